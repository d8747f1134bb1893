"""ONNX export: `model.onnx`, the serving computation for ONNX Runtime, TensorRT, Triton.

    from catface_keras.export.onnx import export_onnx, run_onnx
    export_onnx(model, "saved_models/catface/1/model.onnx")
    outputs = run_onnx("saved_models/catface/1/model.onnx", faces)   # uint8 or float faces

The graph is `portable.portable_function(model)` converted with tf2onnx at opset
`ONNX_OPSET`: input `images` float32 `(batch, 112, 112, 3)` RGB in [0, 255], any batch;
outputs `embedding` (L2-normalised), `embedding_norm` and one probability per attribute.
Needs the `[onnx]` extra (tf2onnx, onnx, onnxruntime); imported here, inside the functions.
"""

import pathlib

from catface_keras.atomic_files import write_bytes_atomically
from catface_keras.choices import EXTRA_INSTALL
from catface_keras.export.portable import check_faces, portable_function

# ONNX Runtime >= 1.14, TensorRT >= 8.6 and OpenVINO read opset 17.
ONNX_OPSET = 17
ONNX_INSTALL = EXTRA_INSTALL.format(extra="onnx")


def onnx_modules():
    """`(tf2onnx, onnxruntime)`, or an `ImportError` naming the pip command."""
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs tf2onnx and onnxruntime ({error.name} is missing). "
            f"Install them with: {ONNX_INSTALL}"
        ) from error
    return tf2onnx, onnxruntime


def onnx_bytes(model, opset=ONNX_OPSET):
    """The serialised ONNX model of `model`'s serving computation."""
    tf2onnx, _ = onnx_modules()
    function = portable_function(model)
    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=opset
    )
    return proto.SerializeToString()


def export_onnx(model, path, opset=ONNX_OPSET):
    """Writes `model.onnx` at `path` (atomically: beside it, then renamed); returns `path`."""
    return write_bytes_atomically(onnx_bytes(model, opset), pathlib.Path(path))


def run_onnx(path, faces):
    """Runs an exported `.onnx` file with ONNX Runtime on the CPU.

    Args:
        path: the `.onnx` file.
        faces: uint8 or float `(batch, 112, 112, 3)` RGB faces.

    Returns:
        dict of output name -> NumPy array (`embedding` `(batch, D)`, the others `(batch,)`).
    """
    _, onnxruntime = onnx_modules()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    values = session.run(None, {session.get_inputs()[0].name: check_faces(faces)})
    return {output.name: value for output, value in zip(session.get_outputs(), values)}
