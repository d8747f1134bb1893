import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.layers.prelu import PReLU


def outputs_and_gradients(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
    d_x, d_alpha = tape.gradient(loss, [x, layer.alpha.value])
    return np.asarray(y, "float32"), np.asarray(d_x, "float32"), np.asarray(d_alpha)


@pytest.mark.parametrize("shared_axes", [[1, 2], None, [1]])
def test_outputs_and_gradients_equal_keras_prelu(shared_axes):
    """Slopes on both sides of 0 and above 1. At x = 0 the input gradient is
    alpha * upstream, as in PyTorch's PReLU; Keras' gives 0 there."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    x[0, 0, 0] = 0.0
    upstream = rng.normal(size=x.shape).astype("float32")
    ours = PReLU(shared_axes=shared_axes)
    reference = keras.layers.PReLU(shared_axes=shared_axes)
    ours.build(x.shape)
    reference.build(x.shape)
    alpha = rng.uniform(-0.5, 1.5, size=ours.alpha.shape).astype("float32")
    ours.alpha.assign(alpha)
    reference.alpha.assign(alpha)
    got = outputs_and_gradients(ours, x, upstream)
    expected = outputs_and_gradients(reference, x, upstream)
    kink = x == 0
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1][~kink], expected[1][~kink], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-6, atol=1e-6)
    slopes = np.broadcast_to(alpha, x.shape)
    np.testing.assert_allclose(got[1][kink], (slopes * upstream)[kink], rtol=1e-6)
    # One channel's slope gradient by hand: the sum of upstream * x where x < 0.
    if shared_axes == [1, 2]:
        channel = 2
        mask = x[..., channel] < 0
        by_hand = (upstream[..., channel] * x[..., channel])[mask].sum()
        np.testing.assert_allclose(got[2][0, 0, channel], by_hand, rtol=1e-5)


def test_mixed_bfloat16_outputs_equal_keras_prelu():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 16, 16, 4)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layers = [PReLU(shared_axes=[1, 2], dtype="mixed_bfloat16"),
              keras.layers.PReLU(shared_axes=[1, 2], dtype="mixed_bfloat16")]
    for layer in layers:
        layer.build(x.shape)
        layer.alpha.assign(np.linspace(-0.2, 1.2, 4, dtype="float32").reshape(1, 1, 4))
    (y, d_x, d_alpha), (y_keras, d_x_keras, d_alpha_keras) = (
        outputs_and_gradients(layer, x, upstream) for layer in layers)
    assert layers[0].compute_dtype == "bfloat16"
    np.testing.assert_array_equal(y, y_keras)
    np.testing.assert_array_equal(d_x, d_x_keras)
    # Both sum the slope gradient's bf16 products in bf16, in their own order.
    np.testing.assert_allclose(d_alpha, d_alpha_keras, rtol=2**-6)


def test_loads_as_saved(tmp_path):
    inputs = keras.Input((3, 4, 2))
    model = keras.Model(inputs, PReLU(shared_axes=[1, 2], name="prelu")(inputs))
    model.get_layer("prelu").alpha.assign(np.array([[[0.1, -0.2]]], "float32"))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("prelu"), PReLU)
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 2)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
