"""The network an export serves: at the chosen precision, batch norms folded.

    network = serving_model(load_model("stage2.keras"), precision="bfloat16")
    network.cosine_to_float32    # {"cosine_min": 0.9999, "cosine_mean": ..., "images": 8}
    export_saved_model(network, "saved_models/catface")

Every export format serves this model, so they all compute the same function.
"""

import numpy as np

from catface_keras.data.synthetic import render_face
from catface_keras.models.batch_norm_folding import fold_batch_norms
from catface_keras.models.inference_precision import (
    embedding_agreement,
    model_at_precision,
    resolve_precision,
)

# Procedural faces of people no training set holds, on which the served network is checked.
CHECK_IDENTITIES = range(900_000, 900_008)


def procedural_check_faces(image_size):
    """`(8, image_size, image_size, 3)` uint8 procedural faces, one each of eight people."""
    return np.stack([render_face(identity, 0, image_size) for identity in CHECK_IDENTITIES])


def serving_model(model, precision="float32", fold=True):
    """`model` computing at `precision` (`model_at_precision`), with its batch norms folded
    into the convolutions before them (`fold_batch_norms`) unless `fold` is False.

    Returns a model following the serving contract of `catface_keras.export.serving`
    (`image_size`, `attribute_names` where the network has attributes), inputs and outputs
    float32, whose `precision` is the resolved precision and `cosine_to_float32` (an
    `embedding_agreement` dict) compares its embeddings with `model`'s on
    `procedural_check_faces`; `model` itself is left as it is.

    Raises:
        ValueError: the served network's embeddings are not finite (float16 overflows where
            activations pass 65504).
    """
    precision = resolve_precision(precision)
    served = model_at_precision(model, precision)
    if fold:
        served = fold_batch_norms(served)
    agreement = embedding_agreement(model, served, procedural_check_faces(int(model.image_size)))
    if not np.isfinite(agreement["cosine_min"]):
        raise ValueError(
            f"at {precision} the network's embeddings of procedural faces are not finite (its "
            "activations overflow); export it at bfloat16 or float32. "
            f"Received: precision={precision!r}"
        )
    served.precision, served.cosine_to_float32 = precision, agreement
    return served
