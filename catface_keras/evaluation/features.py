"""Flip-fused embeddings of a model, the one computation behind `catface evaluate`,
`catface embed` and `catface verify`.

Each image and its mirror image go through the model in the same batches of
`model.predict`; their embeddings are added in float64 and the sum is
L2-normalised (insightface's and AdaFace's evaluation). Every caller gets the
same numbers for the same images, so a threshold calibrated by `catface evaluate`
applies unchanged to the scores of `catface verify`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from catface_keras.unit_vectors import l2_normalize


@dataclasses.dataclass(frozen=True)
class Features:
    """What a model says about `N` images.

    Attributes:
        embeddings: `(N, D)` float64: flip-fused and L2-normalised by default
            (see `extract_features`).
        norms: `(N,)` float64 L2 norm of the model's own embedding of each
            (unflipped) image: AdaFace's feature-norm quality proxy.
        attribute_logits: `(N, A)` float32 of the unflipped images, or None for a
            model without attribute outputs (an imported iResNet).
    """

    embeddings: np.ndarray
    norms: np.ndarray
    attribute_logits: np.ndarray | None


def _predict(model, dataset):
    # `predict` runs the model's own traced function, built once per model and
    # reused across calls (eager calls cost about a quarter more CPU).
    return model.predict(dataset.prefetch(tf.data.AUTOTUNE), verbose=0)


def extract_features(model, images, batch_size=64, flip=True, normalize=True):
    """Runs `model` over `images` (and, with `flip`, their mirror images) in batches.

    Args:
        model: a model whose output dict holds `embedding` `(batch, D)` (and
            optionally `attribute_logits`); called on float RGB in [0, 255].
        images: `(N, S, S, 3)` RGB in [0, 255], uint8 or float, S = the model's input.
        batch_size: images per model call.
        flip: add to each embedding its mirror image's, in float64.
        normalize: L2-normalise the (fused) embeddings (a zero row stays zero).
            Without it and without `flip` they are the model's own, in float64.

    Returns:
        A `Features`.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"`images` must be (N, S, S, 3) RGB. Received: images.shape={images.shape}")
    if len(images) == 0:
        probe = np.zeros((1, *images.shape[1:]), np.float32)
        outputs = {key: np.asarray(value) for key, value in model(probe, training=False).items()}
        logits = outputs.get("attribute_logits")
        return Features(
            embeddings=np.zeros((0, outputs["embedding"].shape[-1]), np.float64),
            norms=np.zeros((0,), np.float64),
            attribute_logits=None if logits is None else np.zeros((0, logits.shape[-1]), np.float32),
        )
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    dataset = dataset.map(lambda x: tf.cast(x, tf.float32))
    outputs = _predict(model, dataset)
    embeddings = np.asarray(outputs["embedding"], np.float64)
    norms = np.linalg.norm(embeddings, axis=1)
    if flip:
        mirrored = _predict(model, dataset.map(lambda x: tf.reverse(x, axis=[2])))["embedding"]
        embeddings = embeddings + np.asarray(mirrored, np.float64)
    if normalize:
        embeddings = l2_normalize(embeddings)
    logits = outputs.get("attribute_logits")
    return Features(
        embeddings=embeddings,
        norms=norms,
        attribute_logits=None if logits is None else np.asarray(logits, np.float32),
    )
