"""LiteRT (TFLite) export: `model.tflite`, float32 or dynamic-range quantised.

    from catface_keras.export.litert import export_litert, run_litert
    export_litert(model, "saved_models/catface/1/model.tflite")
    export_litert(model, "saved_models/catface/1/model_dynamic.tflite", quantize="dynamic")
    outputs = run_litert("saved_models/catface/1/model.tflite", faces)  # uint8 or float faces

The graph is `portable.portable_function(model)` with its weights frozen to constants,
converted with TensorFlow's LiteRT converter, built-in ops only; one signature,
`serving_default`: input `images` float32 `(batch, 112, 112, 3)` RGB in [0, 255], any batch;
outputs `embedding` (L2-normalised), `embedding_norm` and one probability per attribute.

`quantize="dynamic"`: dynamic-range quantisation, weights stored as int8 (about 4x smaller),
activations computed in float; expect an embedding cosine of about 0.999 to float32.

Converting needs TensorFlow only; running (`run_litert`, and the check `catface export`
makes) needs the `[litert]` extra, the `ai-edge-litert` interpreter (`tf.lite.Interpreter`
is deprecated since TensorFlow 2.20).
"""

import pathlib

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from catface_keras.atomic_files import write_bytes_atomically
from catface_keras.choices import EXTRA_INSTALL, LITERT_QUANTIZATIONS
from catface_keras.export.portable import check_faces, portable_function
from catface_keras.export.serving import IMAGES_INPUT, IMAGES_SIGNATURE

LITERT_INSTALL = EXTRA_INSTALL.format(extra="litert")


def litert_interpreter_class():
    """`ai_edge_litert.interpreter.Interpreter`, or an `ImportError` naming the pip command."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError(
            f"Running LiteRT files needs the LiteRT interpreter. Install it with: {LITERT_INSTALL}"
        ) from error
    return Interpreter


def litert_bytes(model, quantize=None):
    """The `.tflite` flatbuffer of `model`'s serving computation."""
    if quantize is not None and quantize not in LITERT_QUANTIZATIONS:
        raise ValueError(
            f"`quantize` must be None or one of {LITERT_QUANTIZATIONS}. "
            f"Received: quantize={quantize!r}"
        )
    function = portable_function(model).get_concrete_function()
    # Frozen: the converter keeps Keras's resource variables as READ_VARIABLE ops, which
    # fail at run time for variables it does not initialise (a dropout's seed state).
    frozen = convert_variables_to_constants_v2(function)
    names = sorted(function.structured_outputs)  # the order of the flat outputs

    @tf.function(input_signature=function.structured_input_signature[0])
    def serve(images):
        return dict(zip(names, frozen(images)))

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], tf.Module()
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def export_litert(model, path, quantize=None):
    """Writes a `.tflite` file at `path` (atomically: beside it, then renamed); returns `path`."""
    return write_bytes_atomically(litert_bytes(model, quantize), pathlib.Path(path))


def run_litert(path, faces):
    """Runs an exported `.tflite` file with the LiteRT interpreter.

    Args:
        path: the `.tflite` file.
        faces: uint8 or float `(batch, 112, 112, 3)` RGB faces.

    Returns:
        dict of output name -> NumPy array (`embedding` `(batch, D)`, the others `(batch,)`).
    """
    interpreter = litert_interpreter_class()(model_path=str(path))
    runner = interpreter.get_signature_runner(IMAGES_SIGNATURE)
    return runner(**{IMAGES_INPUT: check_faces(faces)})
