"""One export version in several formats, checked against the Keras model, with its model card.

    export_formats(model, "saved_models/catface", ["savedmodel", "onnx", "litert"],
                   model_path="runs/demo/stage2.keras")

writes `saved_models/catface/N/` (N as `saved_model.next_version`, all or nothing):

    saved_model.pb variables/ assets.extra/   savedmodel: TF Serving's layout
    model.onnx                                onnx: Triton's ONNX Runtime layout (N/model.onnx)
    model.tflite                              litert, float32
    model_dynamic.tflite                      litert with litert_quantize="dynamic"
    model_card.md  model_card.json            always

Each ONNX and LiteRT file is run once, right after it is written, on procedural faces
(`catface_keras.data.synthetic`) and compared with the Keras model; the largest differences
(and, for the quantised file, the embedding cosine to float32) go into the model card.
"""

import pathlib

import numpy as np
import tensorflow as tf

from catface_keras.choices import EXPORT_FORMATS as FORMATS
from catface_keras.choices import LITERT_QUANTIZATIONS
from catface_keras.export.inference_graph import procedural_check_faces
from catface_keras.export.litert import export_litert, litert_interpreter_class, run_litert
from catface_keras.export.model_card import model_card, write_model_card
from catface_keras.export.onnx import ONNX_OPSET, export_onnx, onnx_modules, run_onnx
from catface_keras.export.portable import portable_outputs
from catface_keras.export.saved_model import export_version, write_saved_model
from catface_keras.export.serving import SERVING_IMAGE_SIZE
from catface_keras.export.warmup import WARMUP_BATCH_SIZES, serving_apis
from catface_keras.models.inference_precision import cosine_agreement, model_precision

ONNX_FILE = "model.onnx"
LITERT_FILE = "model.tflite"
LITERT_DYNAMIC_FILE = "model_dynamic.tflite"


def check_formats(formats, litert_quantize=None):
    """`formats` as a tuple in `FORMATS` order, with the packages they need importable.

    Raises:
        ValueError: an unknown or no format, or `litert_quantize` without `litert`.
        ImportError: a format's optional packages are missing (the message names the pip
            command).
    """
    formats = tuple(formats)
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"`formats` must be a non-empty selection of {FORMATS}. Received: formats={formats!r}"
        )
    if litert_quantize is not None and litert_quantize not in LITERT_QUANTIZATIONS:
        raise ValueError(
            f"`litert_quantize` must be None or one of {LITERT_QUANTIZATIONS}. "
            f"Received: litert_quantize={litert_quantize!r}"
        )
    if litert_quantize is not None and "litert" not in formats:
        raise ValueError(
            "`litert_quantize` needs the litert format. "
            f"Received: formats={formats!r}, litert_quantize={litert_quantize!r}"
        )
    if "savedmodel" in formats:
        serving_apis()
    if "onnx" in formats:
        onnx_modules()
    if "litert" in formats:
        litert_interpreter_class()
    return tuple(name for name in FORMATS if name in set(formats))


def compare_outputs(reference, outputs):
    """Largest absolute difference per output name (all of `reference`'s names required)."""
    missing = sorted(set(reference) - set(outputs))
    if missing:
        raise ValueError(f"the exported file lacks the outputs {missing}")
    return {
        name: float(np.max(np.abs(np.asarray(outputs[name]) - np.asarray(value))))
        for name, value in reference.items()
    }


def export_formats(
    model, base_dir, formats=("savedmodel",), version=None, overwrite=False,
    litert_quantize=None, model_path=None, training=None,
    warmup_batch_sizes=WARMUP_BATCH_SIZES, max_image_pixels=None,
):
    """Exports `model` as version `base_dir/N` in `formats`; returns `(path, card)`.

    Args:
        model: a stage-1 or stage-2 model, or an imported backbone (`IResNetEmbedder`; not
            with "savedmodel", whose signatures need attribute outputs).
        base_dir: the model's base path (`saved_models/NAME`).
        formats: names from `FORMATS`.
        version, overwrite: as `export_saved_model`.
        litert_quantize: None, or "dynamic" to add `model_dynamic.tflite`.
        model_path: the `.keras` file the model came from (for the card: calibration file,
            run folder).
        training: `model_card.training_record(...)` of its run, or None.
        warmup_batch_sizes, max_image_pixels: as `export_saved_model`.

    Raises:
        as `check_formats` and `export_saved_model`.
    """
    formats = check_formats(formats, litert_quantize)
    faces, reference = None, None
    if {"onnx", "litert"} & set(formats):
        faces = procedural_check_faces(SERVING_IMAGE_SIZE)
        reference = {
            name: value.numpy()
            for name, value in portable_outputs(model, tf.constant(faces, tf.float32)).items()
        }
    model_name = pathlib.Path(base_dir).resolve().name
    precision = model_precision(model)
    written = {}

    def write(directory):
        exports = {}
        if "savedmodel" in formats:
            write_saved_model(model, directory, model_name, warmup_batch_sizes, max_image_pixels)
            exports["savedmodel"] = {
                "file": "saved_model.pb", "precision": precision,
                "signatures": ["serving_default", "serving_bytes"],
            }
        directory.mkdir(exist_ok=True)
        if "onnx" in formats:
            export_onnx(model, directory / ONNX_FILE)
            exports["onnx"] = _checked(
                {"file": ONNX_FILE, "precision": precision, "opset": ONNX_OPSET},
                reference, run_onnx(directory / ONNX_FILE, faces),
            )
        if "litert" in formats:
            export_litert(model, directory / LITERT_FILE)
            float_outputs = run_litert(directory / LITERT_FILE, faces)
            exports["litert"] = _checked(
                {"file": LITERT_FILE, "precision": precision}, reference, float_outputs
            )
            if litert_quantize == "dynamic":
                export_litert(model, directory / LITERT_DYNAMIC_FILE, quantize="dynamic")
                quantised = run_litert(directory / LITERT_DYNAMIC_FILE, faces)
                agreement = cosine_agreement(float_outputs["embedding"], quantised["embedding"])
                exports["litert_dynamic"] = {
                    "file": LITERT_DYNAMIC_FILE,
                    "precision": "dynamic-range int8 weights, float32 activations",
                    "embedding_cosine_to_float32": agreement,
                    "check": f"embedding cosine to the float32 file on {len(faces)} "
                             f"procedural faces: min {agreement['cosine_min']:.4f}, mean "
                             f"{agreement['cosine_mean']:.4f}",
                }
        card = model_card(model, model_path, exports, training)
        write_model_card(card, directory)
        written["card"] = card

    path = export_version(base_dir, write, version, overwrite)
    return path, written["card"]


def _checked(facts, reference, outputs):
    differences = compare_outputs(reference, outputs)
    return {
        **facts,
        "max_abs_difference": differences,
        "check": f"max abs difference on {len(reference['embedding'])} procedural faces: "
                 f"{max(differences.values()):.2e}",
    }
