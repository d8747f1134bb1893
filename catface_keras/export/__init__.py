"""Export for serving: versioned SavedModels (TF Serving), ONNX and LiteRT, with a model card.

    from catface_keras.export import export_formats, export_saved_model
    path = export_saved_model(model, "saved_models/catface")   # saved_models/catface/1
    path, card = export_formats(model, "saved_models/catface", ["savedmodel", "onnx"])

`serving.py` holds the signatures, `warmup.py` the warm-up requests, `saved_model.py` the
versioned, all-or-nothing directory write; `portable.py` the same computation in ops ONNX
and LiteRT have, `onnx.py` and `litert.py` their files (optional packages, imported inside
the functions), `model_card.py` the card, `formats.py` an export in several formats.
"""

from catface_keras.export.formats import export_formats
from catface_keras.export.saved_model import export_saved_model
from catface_keras.export.saved_model import next_version
from catface_keras.export.serving import BYTES_INPUT
from catface_keras.export.serving import BYTES_SIGNATURE
from catface_keras.export.serving import IMAGES_INPUT
from catface_keras.export.serving import IMAGES_SIGNATURE
from catface_keras.export.serving import SERVING_IMAGE_SIZE
from catface_keras.export.serving import serving_archive

__all__ = [
    "BYTES_INPUT",
    "BYTES_SIGNATURE",
    "IMAGES_INPUT",
    "IMAGES_SIGNATURE",
    "SERVING_IMAGE_SIZE",
    "export_formats",
    "export_saved_model",
    "next_version",
    "serving_archive",
]
