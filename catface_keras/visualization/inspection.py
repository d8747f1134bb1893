"""What a trained model looks at, as picture grids per face (`catface inspect`).

For each face, `inspection_grids` draws:

- a gradients grid: rows are the attributes (score: the attribute's logit) and the
  embedding (score: cosine similarity to the reference face's embedding; on the reference
  itself, whose cosine is 1 with zero gradient, the projection on its own direction, i.e. the
  embedding norm), columns the input and its tf-keras-vis Grad-CAM, Grad-CAM++ and Saliency
  maps (Grad-CAM on the SB / FR branch's last conv block);
- an attention grid: the paper's activation attention maps (sum over channels of squared
  activations, normalised to [0, 1]) of the first stage and of each branch's last conv block,
  for the face (HQ) and its degraded copy (LQ, `degrade` with the seed).

Maps are overlaid on the face (jet colour map, half blended).
"""

import numpy as np
import tensorflow as tf

from catface_keras import degrade
from catface_keras.visualization.attention_maps import attention_maps
from catface_keras.visualization.gradient_maps import (
    GRADIENT_METHODS,
    attribute_gradient_maps,
    embedding_gradient_maps,
)
from catface_keras.visualization.grids import labelled_grid, overlay

MIN_CELL_SIZE = 112
ATTENTION_COLUMNS = {"first": "first block", "fr_last": "FR last block", "sb_last": "SB last block"}


def inspection_grids(model, faces, reference=None, seed=0):
    """`[(gradients grid, attention grid), ...]` uint8 RGB, one pair per face.

    Args:
        model: a CATFace model.
        faces: `(S, S, 3)` uint8 RGB faces, S = `model.image_size`.
        reference: the reference face for the similarity maps (default: `faces[0]`).
        seed: seed of the LQ degradation.
    """
    hq = np.stack(faces).astype(np.uint8)
    reference = hq[0] if reference is None else np.asarray(reference, np.uint8)
    is_reference = np.array([np.array_equal(face, reference) for face in hq])
    reference_embedding = model(reference[None].astype(np.float32), training=False)["embedding"]
    images = hq.astype(np.float32)
    attribute_maps, logits = attribute_gradient_maps(model, images)
    embedding_maps, similarities = embedding_gradient_maps(
        model, images, reference_embedding[0], is_reference
    )
    config = degrade.DegradationConfig(jit_compile=False)
    lq = degrade.degrade(tf.constant(hq), tf.constant([seed, 0], tf.int64), config).numpy()
    hq_attention = attention_maps(model, images)
    lq_attention = attention_maps(model, lq.astype(np.float32))

    cell_size = max(MIN_CELL_SIZE, hq.shape[1])
    grids = []
    for index, face in enumerate(hq):
        rows, labels = [], []
        for attribute_index, name in enumerate(model.attribute_names):
            logit = float(logits[index, attribute_index])
            rows.append([face] + [
                overlay(face, attribute_maps[name][method][index]) for method in GRADIENT_METHODS
            ])
            labels.append(f"{name}\nlogit {logit:+.2f}\np {1 / (1 + np.exp(-logit)):.2f}")
        rows.append([face] + [
            overlay(face, embedding_maps[method][index]) for method in GRADIENT_METHODS
        ])
        if is_reference[index]:
            labels.append(f"embedding\n(reference)\nnorm {similarities[index]:.2f}")
        else:
            labels.append(f"embedding\ncos to ref\n{similarities[index]:.3f}")
        gradients = labelled_grid(rows, labels, ["input", *GRADIENT_METHODS], cell_size)
        attention_rows = [
            [image] + [overlay(image, maps[key][index]) for key in ATTENTION_COLUMNS]
            for image, maps in ((face, hq_attention), (lq[index], lq_attention))
        ]
        attention = labelled_grid(
            attention_rows,
            ["HQ", f"LQ\n(degrade,\nseed {seed})"],
            ["input", *ATTENTION_COLUMNS.values()],
            cell_size,
        )
        grids.append((gradients, attention))
    return grids
