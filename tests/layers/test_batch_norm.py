import keras
import numpy as np
import pytest

from catface_keras.layers.batch_norm import FusedBatchNormalization


def make_pair(**kwargs):
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    shape = (6, 4, 5, 3)
    fused.build(shape)
    reference.build(shape)
    rng = np.random.default_rng(0)
    for layer in (fused, reference):
        if layer.scale:
            layer.gamma.assign(rng.uniform(0.5, 2, 3))
        if layer.center:
            layer.beta.assign(np.array([0.1, -0.2, 0.3]))
        rng = np.random.default_rng(0)
    return fused, reference


@pytest.mark.parametrize("kwargs", [{}, {"center": False, "scale": False}])
def test_training_output_matches_keras_batch_norm(kwargs):
    fused, reference = make_pair(**kwargs)
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(6, 4, 5, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(fused(x, training=True)), np.asarray(reference(x, training=True)), atol=1e-4
    )
    np.testing.assert_allclose(
        np.asarray(fused.moving_mean), np.asarray(reference.moving_mean), rtol=1e-5
    )
    # The fused kernel updates with the unbiased variance (as PyTorch does).
    unbiased = x.reshape(-1, 3).var(axis=0, ddof=1)
    np.testing.assert_allclose(np.asarray(fused.moving_variance), 0.9 + 0.1 * unbiased, rtol=1e-5)


def test_inference_uses_moving_statistics():
    fused, reference = make_pair()
    for layer in (fused, reference):
        layer.moving_mean.assign(np.array([1.0, 2.0, 3.0]))
        layer.moving_variance.assign(np.array([4.0, 0.5, 2.0]))
    x = np.random.default_rng(2).normal(size=(2, 3, 3, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(fused(x, training=False)), np.asarray(reference(x, training=False)), atol=1e-5
    )


def test_gradients_match_keras_batch_norm():
    import tensorflow as tf

    fused, reference = make_pair()
    x = tf.constant(np.random.default_rng(3).normal(size=(6, 4, 5, 3)).astype("float32"))
    grads = []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 3)
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
    for got, expected in zip(*grads):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-3, atol=1e-3)


def test_mixed_precision_keeps_float32_statistics():
    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    y = layer(np.ones((2, 2, 2, 4), "float32") * 3, training=True)
    assert y.dtype == "bfloat16"
    assert layer.moving_mean.dtype == "float32"
    np.testing.assert_allclose(np.asarray(layer.moving_mean), 0.01 * 3, rtol=1e-5)


def test_non_4d_inputs_fall_back_to_keras():
    layer = FusedBatchNormalization()
    x = np.random.default_rng(4).normal(size=(8, 3)).astype("float32")
    y = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
