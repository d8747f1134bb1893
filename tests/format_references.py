"""Faces and reference outputs for the ONNX and LiteRT tests (tests/export).

The reference is computed from the Keras model without the export code: the SavedModel's
`tf.image.resize`, then L2 normalisation, norm and sigmoid in NumPy (float64).
"""

import numpy as np
import tensorflow as tf

from catface_keras.data.synthetic import render_face
from catface_keras.export.serving import resize_for_model


def procedural_faces(count, seed=0):
    """uint8 `(count, 112, 112, 3)` synthetic faces of different identities."""
    return np.stack([render_face(seed * 100 + k, 0, image_size=112) for k in range(count)])


def float_faces(count, seed=0):
    """float32 faces off the uint8 grid: procedural faces plus noise, clipped to [0, 255]."""
    noise = np.random.default_rng(seed).normal(0.0, 3.0, (count, 112, 112, 3))
    return np.clip(procedural_faces(count, seed) + noise, 0, 255).astype(np.float32)


def keras_reference(model, faces):
    """What the files must return, from the Keras model and NumPy: `tf.image.resize` as the
    SavedModel does, L2 normalisation and sigmoid in NumPy."""
    outputs = model(resize_for_model(tf.constant(faces), model.image_size), training=False)
    embedding = np.asarray(outputs["embedding"], np.float64)
    norm = np.linalg.norm(embedding, axis=-1)
    reference = {"embedding": embedding / norm[:, None], "embedding_norm": norm}
    for index, name in enumerate(getattr(model, "attribute_names", None) or ()):
        logits = np.asarray(outputs["attribute_logits"], np.float64)[:, index]
        reference[name] = 1.0 / (1.0 + np.exp(-logits))
    return reference


def max_abs_differences(reference, outputs):
    assert set(outputs) == set(reference)
    return {name: float(np.max(np.abs(outputs[name] - reference[name]))) for name in reference}
