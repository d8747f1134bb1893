"""Activation attention maps: sum over channels of squared activations, in [0, 1]."""

import keras
import numpy as np
import pytest

from catface_keras.visualization.attention_maps import activation_attention, attention_maps
from tiny_models import SIZE


def test_activation_attention_by_hand():
    features = np.array([[[[1.0, 0.0], [0.0, 2.0]],
                          [[1.0, 1.0], [3.0, 0.0]]]])  # (1, 2, 2, 2)
    # Sums of squares: [[1, 4], [2, 9]]; min-max: (e - 1) / 8.
    np.testing.assert_allclose(activation_attention(features)[0],
                               [[0.0, 3 / 8], [1 / 8, 1.0]], rtol=1e-6)


def test_activation_attention_is_per_image_and_zero_when_flat():
    features = np.ones((2, 3, 3, 4), np.float32)
    features[1, 0, 0] = -5.0  # the sign does not matter, the square does
    maps = activation_attention(features)
    np.testing.assert_array_equal(maps[0], np.zeros((3, 3)))
    assert maps[1, 0, 0] == 1.0 and maps[1].min() == 0.0


def test_activation_attention_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\). Received: shape"):
        activation_attention(np.zeros((3, 3, 4)))


def test_maps_of_first_and_last_blocks_have_the_input_size(model):
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    maps = attention_maps(model, images)
    assert set(maps) == {"first", "fr_last", "sb_last"}
    for label, value in maps.items():
        assert value.shape == (2, SIZE, SIZE), label
        assert value.dtype == np.float32
        assert value.min() >= 0.0 and value.max() <= 1.0, label
        assert value.max() > 0.5, label  # an actual map, not a flat one


def test_maps_match_the_layer_activation(model):
    images = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    maps = attention_maps(model, images, {"stem": "stem_prelu"})  # full resolution: no resize
    stem = keras.Model(model.input, model.get_layer("stem_prelu").output)
    np.testing.assert_allclose(maps["stem"], activation_attention(stem(images)), atol=1e-6)
