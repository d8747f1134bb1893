"""Shared checks for Keras layers, in the spirit of keras-hub's `run_layer_test`."""

import inspect
import pathlib
import tempfile

import keras
import numpy as np


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape):
    """Config round trip, symbolic and eager calls, and a `.keras` round trip.

    `expected_output_shape` is a shape or a tuple of shapes (for multi-output
    layers), batch dimension included.
    """
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for name, parameter in inspect.signature(layer_cls.__init__).parameters.items():
        if name not in ("self", "kwargs") and parameter.kind != parameter.VAR_KEYWORD:
            assert name in config, f"{layer_cls.__name__}.get_config() lacks {name!r}"
    restored = layer_cls.from_config(config)
    assert restored.get_config() == config

    inputs = keras.Input(input_shape[1:], batch_size=input_shape[0])
    outputs = layer(inputs)
    shapes = _shapes(outputs)
    expected = _as_shapes(expected_output_shape)
    assert shapes == expected, f"symbolic shapes {shapes} != {expected}"
    computed = layer.compute_output_shape(input_shape)
    assert _as_shapes(computed) == expected

    data = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    eager = layer(data)
    assert _shapes(eager) == expected

    model = keras.Model(inputs, outputs)
    with tempfile.TemporaryDirectory() as scratch:
        path = pathlib.Path(scratch, "layer.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)
    for before, after in zip(_flatten(model(data)), _flatten(reloaded(data))):
        np.testing.assert_allclose(np.asarray(before), np.asarray(after), rtol=1e-6, atol=1e-6)
    return layer


def _flatten(value):
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _shapes(value):
    return tuple(tuple(t.shape) for t in _flatten(value))


def _as_shapes(value):
    if value and isinstance(value[0], (tuple, list)):
        return tuple(tuple(v) for v in value)
    return (tuple(value),)
