import keras
import numpy as np
import pytest

from catface_keras.layers.self_attention import SelfAttention2D


def test_matches_numpy():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 2, 3, 6)).astype("float32")
    layer = SelfAttention2D(key_dim=3)
    attended, attention, value = layer(features)
    tokens = features.reshape(2, 6, 6)
    q = tokens @ np.asarray(layer.query_dense.kernel) + np.asarray(layer.query_dense.bias)
    k = tokens @ np.asarray(layer.key_dense.kernel) + np.asarray(layer.key_dense.bias)
    v = tokens @ np.asarray(layer.value_dense.kernel) + np.asarray(layer.value_dense.bias)
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(3)
    expected_attention = np.exp(scores - scores.max(-1, keepdims=True))
    expected_attention /= expected_attention.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(attention), expected_attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(value), v, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(attended), (expected_attention @ v).reshape(2, 2, 3, 6), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, rtol=1e-6)


def test_default_key_dim_is_an_eighth_of_channels():
    layer = SelfAttention2D()
    layer(np.zeros((1, 2, 2, 32), "float32"))
    assert layer.query_dense.kernel.shape == (32, 4)


def test_attention_float32_under_mixed_precision():
    layer = SelfAttention2D(dtype="mixed_bfloat16")
    attended, attention, _ = layer(np.ones((1, 2, 2, 16), "float32"))
    assert attention.dtype == "float32"
    assert attended.dtype == "bfloat16"


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="key_dim"):
        SelfAttention2D(key_dim=0)
    with pytest.raises(ValueError, match="input_shape"):
        SelfAttention2D()(keras.Input((4, 8)))
