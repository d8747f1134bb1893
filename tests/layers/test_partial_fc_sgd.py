"""Partial FC's own SGD step against `keras.optimizers.SGD` on the same rows.

The centres cannot be owned by the Keras optimizer (each replica updates its
own shard), so `PartialFC.apply_gradient` re-implements SGD; these tests hold
it to Keras' numbers step for step, dense and sparse, and through a loss-scale
optimizer.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.layers.partial_fc import PartialFC, apply_sharded_head_gradients

CLASSES, DIM = 7, 4


def head_and_twin(seed=0):
    """A one-shard Partial FC and a plain variable holding the same `(C, D)` rows."""
    keras.utils.set_random_seed(seed)
    head = PartialFC(CLASSES, num_shards=1, shard_index=0)
    head.build((None, DIM))
    twin = keras.Variable(head.centres.numpy(), name="twin")
    return head, twin


def gradients(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(CLASSES, DIM)).astype("float32") for _ in range(steps)]


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, None), (0.9, None), (0.9, 5e-2)])
def test_dense_steps_equal_keras_sgd(momentum, weight_decay):
    head, twin = head_and_twin()
    optimizer = keras.optimizers.SGD(0.1, momentum=momentum, weight_decay=weight_decay)
    for gradient in gradients(3):
        head.apply_gradient(tf.constant(gradient), 0.1, momentum, weight_decay)
        optimizer.apply([tf.constant(gradient)], [twin])
        np.testing.assert_allclose(head.centres.numpy(), twin.numpy(), rtol=1e-6, atol=1e-7)
    assert np.abs(twin.numpy() - head_and_twin()[1].numpy()).max() > 0.1


def test_sparse_rows_step_as_their_dense_gradient():
    """A sampled step's gradient holds some rows; momentum and decay still act on all."""
    head, twin = head_and_twin()
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-2)
    rows = np.array([1, 4], "int64")
    for gradient in gradients(3, seed=2):
        sparse = tf.IndexedSlices(tf.constant(gradient[rows]), tf.constant(rows), (CLASSES, DIM))
        head.apply_gradient(sparse, 0.1, 0.9, 1e-2)
        optimizer.apply([tf.convert_to_tensor(sparse)], [twin])
        np.testing.assert_allclose(head.centres.numpy(), twin.numpy(), rtol=1e-6, atol=1e-7)


def test_loss_scale_is_undone_and_skipped_steps_leave_the_centres():
    head, twin = head_and_twin()
    inner = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-2)
    scaled = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-2), initial_scale=64.0
    )
    network_variable = keras.Variable(np.zeros(2, "float32"))
    scaled.build([network_variable])
    gradient = gradients(1, seed=3)[0]
    apply_sharded_head_gradients(
        scaled, [head], [tf.constant(64.0 * gradient)], [tf.zeros(2)], learning_rate=0.1
    )
    inner.apply([tf.constant(gradient)], [twin])
    np.testing.assert_allclose(head.centres.numpy(), twin.numpy(), rtol=1e-5, atol=1e-7)
    before = head.centres.numpy().copy()
    apply_sharded_head_gradients(
        scaled, [head], [tf.constant(gradient)], [tf.constant([np.inf, 0.0])], learning_rate=0.1
    )
    np.testing.assert_array_equal(head.centres.numpy(), before)
