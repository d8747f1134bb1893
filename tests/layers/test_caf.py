import keras
import numpy as np
import pytest

from catface_keras.layers.caf import CAF, ChannelGroupAttention


def _inputs(seed=0, shape=(2, 3, 3, 8)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _randomise(layer, seed=1):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))


def test_matches_numpy_attention_across_channel_tokens():
    inputs = _inputs()
    layer = CAF(groups=2)
    layer(inputs)
    _randomise(layer)
    batch, height, width, channels = inputs.shape
    tokens = inputs.reshape(batch, height * width, channels).transpose(0, 2, 1)
    expected = np.zeros_like(tokens)
    for group in range(2):
        rows = slice(group * 4, (group + 1) * 4)
        project = {
            name: tokens[:, rows] @ layer.projections[name][0].numpy()[group]
            + layer.projections[name][1].numpy()[group]
            for name in ("query", "key", "value")
        }
        scores = project["query"] @ project["key"].transpose(0, 2, 1) / np.sqrt(height * width)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        expected[:, rows] = weights @ project["value"]
    expected = expected.transpose(0, 2, 1).reshape(inputs.shape)
    np.testing.assert_allclose(layer(inputs), expected, rtol=1e-4, atol=1e-5)


def test_permuting_channels_within_a_group_permutes_the_output():
    inputs = _inputs(seed=2)
    layer = CAF(groups=2)
    layer(inputs)
    _randomise(layer, seed=3)
    output = np.asarray(layer(inputs))
    within = [2, 0, 3, 1, 5, 7, 4, 6]
    np.testing.assert_allclose(layer(inputs[..., within]), output[..., within], atol=1e-5)
    # Across groups it does not hold: each group has its own projections.
    across = [4, 1, 2, 3, 0, 5, 6, 7]
    assert np.abs(np.asarray(layer(inputs[..., across])) - output[..., across]).max() > 1e-3


def test_argument_errors():
    with pytest.raises(ValueError, match="`groups` must divide the channel count \\(6\\)"):
        CAF(groups=4)(_inputs(shape=(1, 2, 2, 6)))
    with pytest.raises(ValueError, match="groups"):
        CAF(groups=0)


def test_residual_adds_the_input_and_keeps_the_permutation_property():
    inputs = _inputs(seed=5)
    literal = CAF(groups=2)
    residual = CAF(groups=2, residual=True)
    literal(inputs)
    residual(inputs)
    _randomise(literal, seed=6)
    residual.set_weights(literal.get_weights())
    output = np.asarray(residual(inputs))
    np.testing.assert_allclose(output, inputs + np.asarray(literal(inputs)), atol=1e-5)
    within = [1, 0, 3, 2, 4, 6, 5, 7]
    np.testing.assert_allclose(residual(inputs[..., within]), output[..., within], atol=1e-5)


def test_layers_saved_under_the_old_name_still_load():
    inputs = _inputs(seed=7)
    old = ChannelGroupAttention(groups=2, residual=True)
    old(inputs)
    _randomise(old, seed=8)
    config = keras.saving.serialize_keras_object(old)
    assert config["registered_name"] == "catface>ChannelGroupAttention"
    restored = keras.saving.deserialize_keras_object(config)
    restored(inputs)
    restored.set_weights(old.get_weights())
    assert isinstance(restored, CAF)
    np.testing.assert_allclose(restored(inputs), old(inputs), atol=1e-6)
