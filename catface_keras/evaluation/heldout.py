"""Stage evaluation on held-out identities: verification and attributes.

Verification pairs are drawn among identities never seen in training; each
pair is scored three ways: both images clean (HQ-HQ), both degraded (LQ-LQ),
and clean against degraded (HQ-LQ). The LQ copies come from the degradation
module with a fixed seed, so two models are compared on the same images.
"""

import numpy as np
import tensorflow as tf

from catface_keras.degrade import degrade, element_seed
from catface_keras.evaluation.attributes import attribute_accuracy
from catface_keras.evaluation.features import extract_features
from catface_keras.evaluation.verification import sample_verification_pairs, verification_metrics


def degraded_copies(images, seed, batch_size=256):
    """`(N, H, W, 3)` uint8 -> degraded uint8 copies, reproducible from `seed`."""
    batches = []
    for start in range(0, len(images), batch_size):
        batch = tf.cast(images[start : start + batch_size], tf.float32)
        lq = degrade(batch, element_seed([seed, 1], start))
        batches.append(np.asarray(tf.cast(tf.round(tf.clip_by_value(lq, 0, 255)), tf.uint8)))
    return np.concatenate(batches)


def evaluate_heldout(model, faces, config):
    """Verification (HQ-HQ, LQ-LQ, HQ-LQ) and attribute accuracy (HQ and LQ).

    Args:
        model: a model with `embedding` and `attribute_logits` outputs.
        faces: a `FaceArrays` of held-out identities.
        config: an `EvaluationConfig` (pairs, flip, batch size, seed).

    Returns:
        `{"verification": {"hq_hq": {...}, "lq_lq": {...}, "hq_lq": {...}},
        "attributes": {name: accuracy}, "attributes_lq": {name: accuracy}}`.
    """
    lq_images = degraded_copies(faces.images, config.seed)
    hq_embeddings, hq_logits = extract_features(model, faces.images, config.batch_size, config.flip)
    lq_embeddings, lq_logits = extract_features(model, lq_images, config.batch_size, config.flip)
    first, second, same = sample_verification_pairs(faces.identities, config.num_pairs, config.seed)
    verification = {
        "hq_hq": verification_metrics(hq_embeddings[first], hq_embeddings[second], same),
        "lq_lq": verification_metrics(lq_embeddings[first], lq_embeddings[second], same),
        "hq_lq": verification_metrics(hq_embeddings[first], lq_embeddings[second], same),
    }
    names = faces.attribute_names
    return {
        "verification": verification,
        "attributes": attribute_accuracy(faces.attributes, hq_logits, names),
        "attributes_lq": attribute_accuracy(faces.attributes, lq_logits, names),
    }
