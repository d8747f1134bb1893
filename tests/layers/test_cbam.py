import keras
import numpy as np
import pytest

from catface_keras.layers.cbam import CBAM


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _conv_same(maps, kernel):
    """`(B, H, W, 2)` x `(k, k, 2, 1)` zero-padded 'same' correlation, in NumPy."""
    size = kernel.shape[0]
    pad = size // 2
    padded = np.pad(maps, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    batch, height, width, _ = maps.shape
    out = np.zeros((batch, height, width, 1), "float64")
    for i in range(height):
        for j in range(width):
            window = padded[:, i : i + size, j : j + size, :]
            out[:, i, j, 0] = np.einsum("bklc,klc->b", window, kernel[..., 0])
    return out


def test_maps_and_output_match_numpy():
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(0).normal(size=(2, 5, 6, 32)).astype("float32")
    layer = CBAM(reduction=8, spatial_kernel_size=3)
    outputs, channel_logits, spatial_logits = (np.asarray(t) for t in layer(inputs))

    w1, b1 = (np.asarray(v) for v in layer.hidden_dense.weights)
    w2, b2 = (np.asarray(v) for v in layer.output_dense.weights)
    kernel = np.asarray(layer.spatial_conv.kernel)
    mlp = lambda v: np.maximum(v @ w1 + b1, 0) @ w2 + b2  # noqa: E731
    expected_channel = mlp(inputs.mean(axis=(1, 2))) + mlp(inputs.max(axis=(1, 2)))
    weighted = inputs * _sigmoid(expected_channel)[:, None, None, :]
    pooled = np.concatenate(
        [weighted.mean(-1, keepdims=True), weighted.max(-1, keepdims=True)], axis=-1
    )
    expected_spatial = _conv_same(pooled, kernel)

    assert w1.shape == (32, 4) and kernel.shape == (3, 3, 2, 1)
    np.testing.assert_allclose(channel_logits, expected_channel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spatial_logits, expected_spatial, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        outputs, weighted * _sigmoid(expected_spatial), rtol=1e-4, atol=1e-5
    )
    # Logits, not probabilities: some are negative.
    assert channel_logits.min() < 0 and spatial_logits.min() < 0


def test_round_trip_and_bad_arguments(tmp_path):
    inputs = keras.Input((4, 4, 16))
    outputs = CBAM(name="cbam")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 16)).astype("float32")
    model.save(tmp_path / "cbam.keras")
    restored = keras.saving.load_model(tmp_path / "cbam.keras")
    for a, b in zip(model(x), restored(x)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert restored.get_layer("cbam").get_config()["spatial_kernel_size"] == 7
    with pytest.raises(ValueError, match="`reduction` must be a positive int"):
        CBAM(reduction=0)
    with pytest.raises(ValueError, match="CBAM expects"):
        CBAM()(np.zeros((2, 3, 4), "float32"))
