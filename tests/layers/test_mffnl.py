import numpy as np
import pytest

from catface_keras.layers.mffnl import MFFNL, MDConv, split_channels


def test_split_channels_is_as_equal_as_possible():
    assert split_channels(10, 3) == [4, 3, 3]
    assert split_channels(9, 3) == [3, 3, 3]
    assert split_channels(3, 3) == [1, 1, 1]


def test_mdconv_streams_have_the_receptive_fields_they_claim():
    size, centre = 15, 7
    layer = MDConv(kernel_sizes=(3, 5, 7))
    impulse = np.zeros((1, size, size, 3), "float32")
    impulse[0, centre, centre, :] = 1.0
    layer(impulse)
    for stream in layer.streams:
        for conv in stream:
            conv.kernel.assign(np.ones(conv.kernel.shape, "float32"))
    response = np.asarray(layer(impulse))[0]
    for channel, kernel in enumerate((3, 5, 7)):
        support = np.argwhere(np.abs(response[..., channel]) > 0)
        radius = kernel // 2
        assert support.min(axis=0).tolist() == [centre - radius] * 2
        assert support.max(axis=0).tolist() == [centre + radius] * 2
        assert len(support) == kernel * kernel  # the whole square, not a cross
    # 5x5 and 7x7 are factorised: 2k weights per channel, 3x3 is not.
    weights = [sum(int(np.prod(c.kernel.shape)) for c in stream) for stream in layer.streams]
    assert weights == [9, 10, 14]


def test_mdconv_keeps_channels_in_group_order():
    layer = MDConv(kernel_sizes=(3, 5))
    inputs = np.random.default_rng(0).normal(size=(2, 6, 6, 5)).astype("float32")
    first, second = layer.stream_outputs(inputs)
    assert first.shape[-1] == 3 and second.shape[-1] == 2
    np.testing.assert_allclose(layer(inputs), np.concatenate([first, second], -1), atol=1e-6)


def test_mdconv_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="kernel_sizes"):
        MDConv(kernel_sizes=(3, 4))
    with pytest.raises(ValueError, match="at least one channel per kernel size"):
        MDConv(kernel_sizes=(3, 5, 7))(np.zeros((1, 4, 4, 2), "float32"))
    with pytest.raises(ValueError, match="expansion"):
        MFFNL(expansion=0)


def test_residual_mffnl_adds_its_input_to_the_literal_output():
    inputs = np.random.default_rng(1).normal(size=(2, 4, 4, 6)).astype("float32")
    literal = MFFNL(expansion=2)
    residual = MFFNL(expansion=2, residual=True)
    literal(inputs)
    residual(inputs)
    residual.set_weights(literal.get_weights())
    np.testing.assert_allclose(residual(inputs), inputs + np.asarray(literal(inputs)), atol=1e-5)
