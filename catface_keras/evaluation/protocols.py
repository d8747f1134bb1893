"""The paper's evaluation protocols (PAPER.md section 8) for one model, clean and distorted.

`evaluate_protocols` embeds the images of an `EvaluationData` once per
condition (flip-fused features, `extract_features`) and computes:

- `verification`: `verification_summary` of the image pairs (10-fold
  accuracy, TAR at FAR 1e-6 .. 1e-1, AUC, EER);
- `templates`: the same on template pairs (IJB-B/C style);
- `identification`: rank-1/5/10/20 per identification set, and rank-1 per
  probe group where the set has groups (SCFace distances);
- `attributes`: accuracy per soft-biometric attribute the data labels.

Conditions: `clean` (the images as given) and `distorted` (every image of the
data degraded by `catface_keras.degrade.degrade`, the training mix, with a
fixed seed: `distorted_images`).
"""

import numpy as np
from tqdm.auto import tqdm

from catface_keras.evaluation.attributes import attribute_accuracy
from catface_keras.evaluation.features import extract_features
from catface_keras.evaluation.identification import (
    DISTRACTOR_LABEL,
    RANKS,
    grouped_rank1,
    match_ranks,
    rank_accuracies,
)
from catface_keras.evaluation.protocol_data import resize_images
from catface_keras.evaluation.roc import FAR_DECADES
from catface_keras.evaluation.templates import template_verification
from catface_keras.evaluation.verification import cosine_scores, verification_summary

PROTOCOLS = ("verification", "templates", "identification", "attributes")
CONDITIONS = ("clean", "distorted")


def distorted_images(images, seed, batch_size=256):
    """`(N, H, W, 3)` uint8 -> degraded uint8 copies, with a progress bar.

    The same images as `heldout.degraded_copies(images, seed, batch_size)`:
    batch `start` is degraded with seed `element_seed([seed, 1], start)`.
    """
    import tensorflow as tf

    from catface_keras.degrade import degrade, element_seed

    batches = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="degrading", unit="batch", disable=None):
        batch = tf.cast(images[start : start + batch_size], tf.float32)
        lq = degrade(batch, element_seed([seed, 1], start))
        batches.append(np.asarray(tf.cast(tf.round(tf.clip_by_value(lq, 0, 255)), tf.uint8)))
    return np.concatenate(batches)


def embed_images(model, images, batch_size=64, description="embedding"):
    """Flip-fused features of `images`, resized to `model.image_size` if needed.

    Args:
        model: a model returning `embedding` and `attribute_logits`, with an
            `image_size` attribute.
        images: `(N, H, W, 3)` uint8 RGB.

    Returns:
        `(embeddings, attribute_logits)`: `(N, D)` L2-normalised, `(N, A)`.
    """
    images = resize_images(images, int(model.image_size))
    # `extract_features` in chunks, so that a progress bar can follow it; each
    # row is normalised on its own, so chunking does not change the result.
    chunk = 16 * batch_size
    embeddings, logits = [], []
    with tqdm(total=len(images), desc=description, unit="image", disable=None) as bar:
        for start in range(0, len(images), chunk):
            part = extract_features(model, images[start : start + chunk], batch_size, flip=True)
            embeddings.append(part[0])
            logits.append(part[1])
            bar.update(len(part[0]))
    return np.concatenate(embeddings), np.concatenate(logits)


def _identification(features, sets):
    results = {}
    for name, split in sets.items():
        ranks = match_ranks(
            features[split.probes], split.probe_labels,
            features[split.gallery], split.gallery_labels,
        )
        distractors = int(np.sum(split.gallery_labels == DISTRACTOR_LABEL))
        candidates = len(np.unique(split.gallery_labels[split.gallery_labels != DISTRACTOR_LABEL]))
        result = rank_accuracies(ranks, RANKS)
        trivial = [f"rank-{k}" for k in RANKS if k >= candidates + distractors]
        result.update(
            num_probes=int(len(split.probes)),
            num_gallery_images=int(len(split.gallery)),
            num_distractors=distractors,
            notes=[f"{', '.join(trivial)} = 1 by construction: the gallery has only "
                   f"{candidates + distractors} candidates"] if trivial else [],
        )
        if split.probe_groups is not None:
            result["rank_1_by_group"] = grouped_rank1(ranks, split.probe_groups)
        results[name] = result
    return results


def _attributes(logits, attribute_set, model_names):
    names = [name for name in attribute_set.names if name in model_names]
    if not names:
        return {"accuracy": {}, "mean": None, "notes": [
            f"the model predicts {list(model_names)}, the data labels {list(attribute_set.names)}"
        ]}
    labels = attribute_set.labels[:, [attribute_set.names.index(n) for n in names]]
    predicted = logits[attribute_set.image_indices][:, [list(model_names).index(n) for n in names]]
    accuracy = attribute_accuracy(labels, predicted, names)
    known = [value for value in accuracy.values() if not np.isnan(value)]
    return {
        "accuracy": {n: (None if np.isnan(v) else v) for n, v in accuracy.items()},
        "mean": float(np.mean(known)) if known else None,
        "num_images": int(len(attribute_set.image_indices)),
        "notes": [],
    }


def evaluate_protocols(model, data, protocols, images_by_condition, batch_size=64,
                       fars=FAR_DECADES):
    """Every requested protocol on every condition's images.

    Args:
        model: a loaded CATFace model (`embedding`, `attribute_logits`,
            `image_size`, `attribute_names`).
        data: an `EvaluationData`.
        protocols: names from `PROTOCOLS`, each defined by `data`.
        images_by_condition: dict condition -> `(N, H, W, 3)` uint8 images,
            row for row those of `data.images` (e.g. clean and distorted).
        batch_size: images per model call.

    Returns:
        `(results, pair_scores)`: `results[protocol][condition]` holds the
        metrics; `pair_scores[protocol][condition]` is `(scores, same)` for
        the pair protocols (for the ROC and score-histogram plots).
    """
    missing = [name for name in protocols if name not in data.protocols()]
    if missing:
        raise ValueError(
            f"The data ({data.source}) defines {list(data.protocols())}. "
            f"Received: protocols={list(protocols)}"
        )
    results = {name: {} for name in protocols}
    pair_scores = {name: {} for name in protocols if name in ("verification", "templates")}
    for condition, images in images_by_condition.items():
        embeddings, logits = embed_images(model, images, batch_size, f"embedding ({condition})")
        if "verification" in protocols:
            pairs = data.verification
            scores = cosine_scores(embeddings[pairs.first], embeddings[pairs.second])
            results["verification"][condition] = verification_summary(scores, pairs.same, fars)
            pair_scores["verification"][condition] = (scores, pairs.same)
        if "templates" in protocols:
            templates = data.templates
            summary, scores = template_verification(
                embeddings[templates.image_indices], templates.template_ids,
                templates.pairs.first, templates.pairs.second, templates.pairs.same, fars,
            )
            results["templates"][condition] = summary
            pair_scores["templates"][condition] = (scores, templates.pairs.same)
        if "identification" in protocols:
            results["identification"][condition] = _identification(embeddings, data.identification)
        if "attributes" in protocols:
            results["attributes"][condition] = _attributes(
                logits, data.attributes, tuple(model.attribute_names)
            )
    return results, pair_scores
