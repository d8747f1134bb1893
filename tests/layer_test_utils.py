"""One harness for every custom layer, in the manner of keras-hub's `run_layer_test`.

`run_layer_test(LayerClass, init_kwargs, input_data, expected_output_shape, ...)`
checks, in order:

1. the config: every `__init__` argument is in `get_config()`, and
   `from_config(get_config())` gives the same config;
2. build: a symbolic call gives `expected_output_shape` (and so does
   `compute_output_shape`, where the layer implements it) and creates
   `expected_num_trainable_weights` / `expected_num_non_trainable_weights` weights;
3. an eager call on `input_data` gives the same shapes;
4. one `fit` step (MSE to zeros) changes the trainable weights (layers with any);
5. a `.keras` save and load gives equal outputs;
6. each dtype policy (float32, mixed_float16, mixed_bfloat16): float weights stay
   float32, outputs come in the policy's compute dtype and are finite; outputs
   the layer keeps in float32 on purpose (logits, attention maps) are named by
   `float32_outputs`: True for all, or a collection of output indices.

`input_data` is an array (one input), a list of arrays (one list input, as the
fusion layers take `[fr, sb]`) or a tuple of arrays (positional arguments of
`call`, as AdaFace takes `(embeddings, labels)`). The batch dimension is part of
every shape.
"""

import inspect
import pathlib
import tempfile

import keras
import numpy as np

DTYPE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def random_inputs(*shapes, seed=0):
    """Standard-normal float32 arrays of `shapes` (one array for one shape)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=shape).astype("float32") for shape in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    run_training_check=True,
    run_saving_check=True,
    run_precision_check=True,
    float32_outputs=False,
):
    """Runs the checks of the module docstring; returns the built layer."""
    keras.utils.set_random_seed(0)
    _check_config(layer_cls, init_kwargs)
    expected = _as_shapes(expected_output_shape)

    layer = layer_cls(**init_kwargs)
    symbolic_inputs = _map(input_data, _symbolic)
    symbolic_outputs = _call(layer, symbolic_inputs)
    assert _shapes(symbolic_outputs) == expected, (
        f"symbolic shapes {_shapes(symbolic_outputs)} != {expected}")
    _check_compute_output_shape(layer, input_data, expected)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            [w.path for w in layer.trainable_weights])
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, (
            [w.path for w in layer.non_trainable_weights])

    eager_outputs = _call(layer, input_data)
    assert _shapes(eager_outputs) == expected, f"eager shapes {_shapes(eager_outputs)} != {expected}"

    model = keras.Model(_flatten(symbolic_inputs), symbolic_outputs)
    if run_training_check and layer.trainable_weights:
        _check_fit_step(model, layer, input_data, expected)
    if run_saving_check:
        _check_saving(model, input_data)
    if run_precision_check:
        for policy in DTYPE_POLICIES:
            _check_dtype_policy(layer_cls, init_kwargs, input_data, policy, float32_outputs)
    return layer


def _check_config(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for name, parameter in inspect.signature(layer_cls.__init__).parameters.items():
        if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            assert name in config, f"{layer_cls.__name__}.get_config() lacks {name!r}"
    restored = layer_cls.from_config(config)
    assert restored.get_config() == config


def _check_compute_output_shape(layer, input_data, expected):
    shapes = _map(input_data, lambda array: tuple(array.shape))
    try:
        if isinstance(input_data, tuple):
            computed = layer.compute_output_shape(*shapes)
        else:
            computed = layer.compute_output_shape(shapes)
    except NotImplementedError:
        return
    assert _as_shapes(computed) == expected, f"compute_output_shape {computed} != {expected}"


def _check_fit_step(model, layer, input_data, expected):
    before = [np.array(weight) for weight in layer.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    targets = [np.zeros(shape, "float32") for shape in expected]
    history = model.fit(_flatten(input_data), targets if len(targets) > 1 else targets[0],
                        batch_size=len(_flatten(input_data)[0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.array_equal(old, np.array(new))
               for old, new in zip(before, layer.trainable_weights)]
    assert any(changed), "one fit step changed no trainable weight"


def _check_saving(model, input_data):
    with tempfile.TemporaryDirectory() as scratch:
        path = pathlib.Path(scratch, "layer.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)
    arguments = _flatten(input_data)
    for before, after in zip(_flatten(model(arguments)), _flatten(reloaded(arguments))):
        np.testing.assert_allclose(np.asarray(before), np.asarray(after), rtol=1e-6, atol=1e-6)


def _check_dtype_policy(layer_cls, init_kwargs, input_data, policy, float32_outputs):
    layer = layer_cls(**init_kwargs, dtype=policy)
    outputs = _call(layer, input_data)
    compute_dtype = keras.dtype_policies.get(policy).compute_dtype
    for index, output in enumerate(_flatten(outputs)):
        if "float" not in keras.backend.standardize_dtype(output.dtype):
            continue  # indices, labels
        in_float32 = float32_outputs is True or (
            not isinstance(float32_outputs, bool) and index in float32_outputs)
        expected = "float32" if in_float32 else compute_dtype
        assert keras.backend.standardize_dtype(output.dtype) == expected, (
            f"{policy}: output dtype {output.dtype}, expected {expected}")
        assert np.all(np.isfinite(np.asarray(output, "float32"))), f"{policy}: non-finite output"
    for weight in layer.weights:
        if "float" in keras.backend.standardize_dtype(weight.dtype):
            assert weight.dtype == "float32", f"{policy}: {weight.path} is {weight.dtype}"


def _symbolic(array):
    return keras.Input(array.shape[1:], batch_size=array.shape[0], dtype=str(array.dtype))


def _map(data, function):
    if isinstance(data, tuple):
        return tuple(function(item) for item in data)
    if isinstance(data, list):
        return [function(item) for item in data]
    return function(data)


def _call(layer, data):
    return layer(*data) if isinstance(data, tuple) else layer(data)


def _flatten(value):
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _shapes(value):
    return tuple(tuple(t.shape) for t in _flatten(value))


def _as_shapes(value):
    if value and isinstance(value[0], (tuple, list)):
        return tuple(tuple(v) for v in value)
    return (tuple(value),)
