"""Embeddings and attribute logits of a trained model, with flip fusion."""

import numpy as np
import tensorflow as tf


def extract_features(model, images, batch_size=64, flip=True):
    """Runs `model` over `images` in batches.

    Args:
        model: a model whose outputs hold `embedding` and `attribute_logits`.
        images: `(N, H, W, 3)` RGB in [0, 255], uint8 or float.
        flip: add the embedding of each horizontally flipped image before
            normalising (the AdaFace / insightface evaluation protocol).

    Returns:
        `(embeddings, attribute_logits)`: `(N, D)` L2-normalised float32 and
        `(N, A)` float32 (of the unflipped images).
    """
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    dataset = dataset.map(lambda x: tf.cast(x, tf.float32)).prefetch(tf.data.AUTOTUNE)

    # One traced graph for all batches: eager calls cost about a quarter more CPU.
    @tf.function(reduce_retracing=True)
    def forward(batch):
        outputs = model(batch, training=False)
        embedding = outputs["embedding"]
        if flip:
            embedding = embedding + model(tf.reverse(batch, axis=[2]), training=False)["embedding"]
        return embedding, outputs["attribute_logits"]

    embeddings, attribute_logits = [], []
    for batch in dataset:
        embedding, logits = forward(batch)
        embeddings.append(np.asarray(embedding, np.float32))
        attribute_logits.append(np.asarray(logits, np.float32))
    embeddings = np.concatenate(embeddings)
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return embeddings, np.concatenate(attribute_logits)
