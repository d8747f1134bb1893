"""Embeddings and attribute logits of a trained model, with flip fusion."""

import numpy as np
import tensorflow as tf


def extract_features(model, images, batch_size=64, flip=True, normalize=True):
    """Runs `model` over `images` in batches.

    Args:
        model: a model whose outputs hold `embedding` and `attribute_logits`.
        images: `(N, H, W, 3)` RGB in [0, 255], uint8 or float.
        flip: add the embedding of each horizontally flipped image before
            normalising (insightface's and AdaFace's evaluation: the sum of
            the two embeddings, L2-normalised, in float64).
        normalize: L2-normalise the embeddings; without it (and without
            `flip`) they are the model's own, whose norm is AdaFace's quality proxy.

    Returns:
        `(embeddings, attribute_logits)`: `(N, D)` float64 (L2-normalised by default) and
        `(N, A)` float32 (of the unflipped images).
    """
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    dataset = dataset.map(lambda x: tf.cast(x, tf.float32))
    # `predict` runs the model's own traced function, built once per model and
    # reused across calls (eager calls cost about a quarter more CPU).
    outputs = model.predict(dataset.prefetch(tf.data.AUTOTUNE), verbose=0)
    embeddings = np.asarray(outputs["embedding"], np.float64)
    if flip:
        mirrored = dataset.map(lambda x: tf.reverse(x, axis=[2]))
        flipped = model.predict(mirrored.prefetch(tf.data.AUTOTUNE), verbose=0)["embedding"]
        embeddings = embeddings + np.asarray(flipped, np.float64)
    if normalize:
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        embeddings /= np.where(norms > 0, norms, 1.0)  # a zero row stays zero, as sklearn's
    return embeddings, np.asarray(outputs["attribute_logits"], np.float32)
