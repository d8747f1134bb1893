import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.layers.adaface import AdaFace
from catface_keras.layers.partial_fc import (
    PartialFC,
    sample_classes,
    shard_bounds,
)

DIM, CLASSES, BATCH = 8, 10, 6


def batch(seed=0):
    rng = np.random.default_rng(seed)
    embeddings = (rng.normal(size=(BATCH, DIM)) * 10).astype("float32")
    labels = rng.integers(0, CLASSES, BATCH).astype("int32")
    return tf.constant(embeddings), tf.constant(labels)


def dense_and_partial(sample_rate=1.0):
    keras.utils.set_random_seed(0)
    dense = AdaFace(CLASSES)
    dense.build((None, DIM))
    partial = PartialFC(CLASSES, sample_rate=sample_rate, seed=3)
    partial.build((None, DIM))
    partial.centres.assign(tf.transpose(dense.kernel))
    return dense, partial


def test_sample_rate_one_equals_the_dense_adaface_head():
    """Logits, loss and gradients; tolerance 1e-5 relative (same float32 ops,
    softmax computed from the row maximum instead of by Keras)."""
    dense, partial = dense_and_partial()
    embeddings, labels = batch()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(embeddings)
        # Partial FC centres are not trainable variables: the training step watches them.
        tape.watch(partial.centres.value)
        dense_logits = dense(embeddings, labels, training=True)
        dense_loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(labels, dense_logits, from_logits=True)
        )
        partial_logits, local_labels = partial(embeddings, labels, training=True)
        partial_loss = partial.loss(embeddings, labels, training=False)
    np.testing.assert_array_equal(local_labels, labels)
    np.testing.assert_allclose(partial_logits, dense_logits, rtol=1e-6, atol=1e-5)
    assert float(partial_loss) == pytest.approx(float(dense_loss), rel=1e-5)
    assert float(partial.norm_mean) == pytest.approx(float(dense.norm_mean))
    dense_grads = tape.gradient(dense_loss, [embeddings, dense.kernel])
    dense_grads[1] = tf.transpose(dense_grads[1])  # centres are rows in Partial FC
    for dense_grad, partial_grad in zip(
        dense_grads, tape.gradient(partial_loss, [embeddings, partial.centres.value])
    ):
        assert np.abs(dense_grad).max() > 0
        np.testing.assert_allclose(
            tf.convert_to_tensor(partial_grad), dense_grad, rtol=1e-4, atol=1e-6
        )


def test_sampled_columns_keep_every_positive_and_match_dense_logits():
    dense, partial = dense_and_partial(sample_rate=0.3)
    embeddings, labels = batch(seed=1)
    logits, local_labels = partial(embeddings, labels, training=True)
    dense_logits = dense(embeddings, labels, training=True).numpy()
    # ceil(0.3 * 10) = 3 columns, or more when the batch holds more classes.
    distinct = len(set(labels.numpy().tolist()))
    assert distinct > 3
    assert logits.shape == (BATCH, distinct)
    columns, again = sample_classes(labels, 0, CLASSES, 3, seed=tf.constant([3, 4]))
    np.testing.assert_array_equal(columns.numpy()[again.numpy()], labels.numpy())
    assert np.all(np.diff(columns.numpy()) > 0)
    # The scored columns are the dense logits of the classes they stand for
    # (to 1e-5: the same dot products summed in another order).
    rows = np.arange(BATCH)
    target = dense_logits[rows, labels.numpy()]
    np.testing.assert_allclose(logits.numpy()[rows, local_labels.numpy()], target, rtol=1e-5)
    for row in range(BATCH):
        nearest = np.abs(logits.numpy()[row][:, None] - dense_logits[row][None, :]).min(axis=1)
        assert nearest.max() < 1e-3


def test_labels_of_other_shards_are_minus_one():
    start, size = shard_bounds(10, 3, 1)
    assert (start, size) == (4, 4)
    assert [shard_bounds(10, 3, i) for i in (0, 2)] == [(0, 4), (8, 2)]
    columns, local = sample_classes(tf.constant([0, 4, 6, 9]), start, size, size)
    np.testing.assert_array_equal(columns, [0, 1, 2, 3])
    np.testing.assert_array_equal(local, [-1, 0, 2, -1])
    with pytest.raises(ValueError, match="shard_index=3"):
        shard_bounds(10, 3, 3)


def test_padding_columns_are_sampled_last():
    """A shard of width 6 holding 4 classes: padding only when more columns are asked."""
    seed = tf.constant([1, 2])
    columns, _ = sample_classes(tf.constant([1]), 0, 4, 4, seed=seed, width=6)
    np.testing.assert_array_equal(columns, [0, 1, 2, 3])
    columns, local = sample_classes(tf.constant([1, 1, 3]), 0, 4, 2, seed=seed, width=6)
    np.testing.assert_array_equal(columns, [1, 3])
    np.testing.assert_array_equal(local, [0, 0, 1])


def test_two_shards_on_two_replicas_give_the_dense_loss(two_cpu_strategy):
    """Each replica holds half the classes and half the batch; the loss over
    both equals the dense one on the whole batch.

    Tolerance 1e-5 relative: log-sum-exp assembled from two partial sums.
    """
    dense, _ = dense_and_partial()
    embeddings, labels = batch(seed=2)
    dense_logits = dense(embeddings, labels, training=False)
    expected = tf.reduce_mean(
        keras.losses.sparse_categorical_crossentropy(labels, dense_logits, from_logits=True)
    )
    strategy = two_cpu_strategy
    with strategy.scope():
        head = PartialFC(CLASSES)
        head.build((None, DIM))
        head._assign_shards(head.centres, dense.kernel.numpy().T)
        assert head.centres.shape == (CLASSES // 2, DIM)
        halves = [
            strategy.experimental_distribute_values_from_function(
                lambda context, t=t: t[context.replica_id_in_sync_group * 3:][:3]
            )
            for t in (embeddings, labels)
        ]
        losses = strategy.run(
            tf.function(lambda e, y: head.loss(e, y, training=False)), args=tuple(halves)
        )
    for replica_loss in strategy.experimental_local_results(losses):
        assert float(replica_loss) == pytest.approx(float(expected), rel=1e-5)


def test_argument_errors_and_round_trip():
    with pytest.raises(ValueError, match="sample_rate=0"):
        PartialFC(10, sample_rate=0)
    with pytest.raises(ValueError, match="num_shards=11"):
        PartialFC(10, num_shards=11)
    layer = PartialFC(10, sample_rate=0.5, num_shards=2, shard_index=1, seed=4)
    assert PartialFC.from_config(layer.get_config()).get_config() == layer.get_config()
