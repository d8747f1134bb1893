"""The one evaluation entry point: protocols x conditions for one model.

`evaluate(model, data, protocols, conditions, degradation, seed)` is what
`catface train` (held-out faces after each stage) and `catface evaluate`
call. It resizes the images of an `EvaluationData` to the model's input,
degrades a copy at that size (as the training pipeline does: resize first,
then degrade), embeds each copy once (flip-fused features, `extract_features`)
and computes, for each condition:

- `verification`: `verification_summary` of the image pairs (10-fold
  accuracy, insightface's protocol by default, TAR at FAR 1e-6 .. 1e-1, AUC, EER);
- `templates`: the same on template pairs (IJB-B/C style);
- `identification`: rank-1/5/10/20 per identification set, and rank-1 per
  probe group where the set has groups (SCFace distances);
- `attributes`: per soft-biometric attribute the data labels, accuracy beside
  the majority class's base rate and balanced accuracy with its 95 % interval.

Conditions (`CONDITIONS`): `clean` (both sides of a pair as given),
`degraded` (both sides degraded) and `mixed` (first side clean, second
degraded: HQ-LQ pairs; for identification a clean gallery and degraded probes;
attributes, a per-image protocol, have no mixed condition). The degraded copy
comes from `catface_keras.degrade.degrade` with a `DegradationConfig` and a
fixed seed (`degraded_copies`), so models are compared on the same images.
"""

import numpy as np
import tensorflow as tf

from catface_keras.choices import EVALUATION_CONDITIONS as CONDITIONS
from catface_keras.data.resizing import resize_faces
from catface_keras.degradation_config import DegradationConfig
from catface_keras.degrade import degrade, element_seed
from catface_keras.evaluation.attributes import attribute_scores
from catface_keras.evaluation.features import extract_features
from catface_keras.evaluation.identification import (
    DISTRACTOR_LABEL,
    RANKS,
    grouped_rank1,
    match_ranks,
    rank_accuracies,
)
from catface_keras.evaluation.roc import FAR_DECADES
from catface_keras.evaluation.templates import template_verification
from catface_keras.evaluation.verification import verification_summary
from catface_keras.progress import progress

# The images each condition takes its pairs' (first, second) sides from;
# for identification (gallery, probes).
CONDITION_SIDES = {
    "clean": ("clean", "clean"),
    "degraded": ("degraded", "degraded"),
    "mixed": ("clean", "degraded"),
}
# Images per `degrade` call. Fixed (not the model batch size): a degraded image
# depends on its batch, and the trainer and the CLI must degrade alike.
DEGRADE_BATCH = 256

DEGRADATION_NOTE = ("images are resized to the model's input size first, then degraded "
                    "(as in training)")


def degraded_copies(images, seed, degradation=None, batch_size=DEGRADE_BATCH):
    """`(N, H, W, 3)` uint8 -> degraded uint8 copies, reproducible from `seed`.

    Batch `start` is degraded with seed `element_seed([seed, 1], start)` and
    the `DegradationConfig` `degradation` (default: `DegradationConfig()`).
    """

    batches = []
    with progress(len(images), "degrading") as bar:
        for start in range(0, len(images), batch_size):
            batch = tf.cast(images[start : start + batch_size], tf.float32)
            lq = degrade(batch, element_seed([seed, 1], start), degradation)
            batches.append(np.asarray(tf.cast(tf.round(tf.clip_by_value(lq, 0, 255)), tf.uint8)))
            bar.update(len(batch))
    return np.concatenate(batches)


def degradation_record(degradation, seed):
    """What "degraded" means, for results files: function, seed, where, parameters."""
    return {
        "function": "catface_keras.degrade.degrade",
        "seed": int(seed),
        "at": DEGRADATION_NOTE,
        "config": degradation.to_dict(),
    }


def condition_images(images, image_size, sides, degradation, seed, cache=None):
    """The images of each side (`"clean"`, `"degraded"`) at `image_size`.

    Args:
        images: `(N, S, S, 3)` uint8.
        sides: the sides needed.
        cache: optional dict, filled and reused per (size, seed, degradation):
            two models of one input size share the resized and degraded copies.
    """
    cache = {} if cache is None else cache
    entry = cache.setdefault((int(image_size), int(seed), degradation), {})
    if "clean" not in entry:
        entry["clean"] = resize_faces(images, int(image_size), f"resizing to {int(image_size)} px")
    if "degraded" in sides and "degraded" not in entry:
        entry["degraded"] = degraded_copies(entry["clean"], seed, degradation)
    return {side: entry[side] for side in sides}


def embed_images(model, images, batch_size=64, flip=True, description="embedding"):
    """Flip-fused features of `images` (at the model's input size), with progress.

    Returns:
        `(embeddings, attribute_logits)`: `(N, D)` L2-normalised, `(N, A)` (None for a
        model without attribute outputs).
    """
    # `extract_features` in chunks, so that progress can be reported; each
    # row is normalised on its own, so chunking does not change the result.
    chunk = 16 * batch_size
    embeddings, logits = [], []
    with progress(len(images), description) as bar:
        for start in range(0, len(images), chunk):
            part = extract_features(model, images[start : start + chunk], batch_size, flip)
            embeddings.append(part.embeddings)
            logits.append(part.attribute_logits)
            bar.update(len(part.embeddings))
    # A model without attribute outputs (an imported iResNet) has no logits.
    return np.concatenate(embeddings), None if logits[0] is None else np.concatenate(logits)


def _identification(gallery_features, probe_features, sets):
    results = {}
    for name, split in sets.items():
        ranks = match_ranks(
            probe_features[split.probes], split.probe_labels,
            gallery_features[split.gallery], split.gallery_labels,
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


NO_ATTRIBUTE_OUTPUTS = ("the model has no attribute outputs (an imported iResNet embeds faces "
                        "only): no attribute accuracy")


def _finite_or_none(value):
    return None if value is None or np.isnan(value) else float(value)


def _attributes(logits, attribute_set, model_names):
    if logits is None:
        return {"accuracy": {}, "mean": None, "notes": [NO_ATTRIBUTE_OUTPUTS]}
    names = [name for name in attribute_set.names if name in model_names]
    if not names:
        return {"accuracy": {}, "mean": None, "notes": [
            f"the model predicts {list(model_names)}, the data labels {list(attribute_set.names)}"
        ]}
    labels = attribute_set.labels[:, [attribute_set.names.index(n) for n in names]]
    predicted = logits[attribute_set.image_indices][:, [list(model_names).index(n) for n in names]]
    scores = attribute_scores(labels, predicted, names)
    per_attribute = {
        name: {key: ([_finite_or_none(v) for v in value] if isinstance(value, list)
                     else _finite_or_none(value) if isinstance(value, float) else value)
               for key, value in values.items()}
        for name, values in scores.items()
    }

    def mean(key):
        known = [values[key] for values in per_attribute.values() if values[key] is not None]
        return float(np.mean(known)) if known else None

    return {
        # `accuracy` and `mean` as before; `per_attribute` adds the majority class's
        # base rate and balanced accuracy with its 95 % interval.
        "accuracy": {name: values["accuracy"] for name, values in per_attribute.items()},
        "mean": mean("accuracy"),
        "per_attribute": per_attribute,
        "mean_balanced_accuracy": mean("balanced_accuracy"),
        "balanced_accuracy_interval": "mean of the per-class Wilson 95 % bounds of the "
                                      "true-positive and true-negative rates (conservative)",
        "num_images": int(len(attribute_set.image_indices)),
        "notes": [],
    }


def _check_choice(name, values, allowed):
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise ValueError(f"`{name}` must be a non-empty selection of {allowed}. "
                         f"Received: {name}={list(values)}")


def evaluate(model, data, protocols=None, conditions=CONDITIONS, degradation=None, seed=1,
             batch_size=64, flip=True, fars=FAR_DECADES, threshold_search="insightface",
             cache=None):
    """Every requested protocol of `data` under every condition, for one model.

    Args:
        model: a CATFace model (`embedding` and `attribute_logits` outputs,
            `image_size` and `attribute_names` attributes), or an imported iResNet
            (`embedding` and `image_size` only; its attribute results hold a note).
        data: an `EvaluationData`.
        protocols: names from `PROTOCOLS`, each defined by `data` (default:
            all that `data` defines).
        conditions: names from `CONDITIONS`.
        degradation: the `DegradationConfig` of the degraded copy (default
            `DegradationConfig()`).
        seed: the degraded copy's seed.
        batch_size: images per model call.
        flip: flip-fused embeddings.
        fars: target FARs of the pair protocols.
        threshold_search: `"insightface"` or `"exact"` (see `verification`).
        cache: optional dict shared between calls (see `condition_images`).

    Returns:
        `(results, pair_scores)`: `results[protocol][condition]` holds the
        metrics; `pair_scores[protocol][condition]` is `(scores, same)` for
        the pair protocols (for the ROC and score-histogram plots).
    """

    protocols = tuple(data.protocols() if protocols is None else protocols)
    missing = [name for name in protocols if name not in data.protocols()]
    if missing:
        raise ValueError(
            f"The data ({data.source}) defines {list(data.protocols())}. "
            f"Received: protocols={list(protocols)}"
        )
    _check_choice("conditions", conditions, CONDITIONS)
    degradation = DegradationConfig() if degradation is None else degradation
    sides = sorted({side for condition in conditions for side in CONDITION_SIDES[condition]})
    images = condition_images(data.images, model.image_size, sides, degradation, seed, cache)
    features = {
        side: embed_images(model, images[side], batch_size, flip, f"embedding ({side})")
        for side in sides
    }
    results = {name: {} for name in protocols}
    pair_scores = {name: {} for name in protocols if name in ("verification", "templates")}
    for condition in conditions:
        (first, first_logits), (second, _) = (features[s] for s in CONDITION_SIDES[condition])
        if "verification" in protocols:
            pairs = data.verification
            summary, scores = verification_summary(
                first[pairs.first], second[pairs.second], pairs.same, fars, folds=pairs.folds,
                threshold_search=threshold_search,
            )
            results["verification"][condition] = summary
            pair_scores["verification"][condition] = (scores, pairs.same)
        if "templates" in protocols:
            templates = data.templates
            summary, scores = template_verification(
                first[templates.image_indices], templates.template_ids,
                templates.pairs.first, templates.pairs.second, templates.pairs.same, fars,
                second_embeddings=second[templates.image_indices],
                threshold_search=threshold_search,
            )
            results["templates"][condition] = summary
            pair_scores["templates"][condition] = (scores, templates.pairs.same)
        if "identification" in protocols:
            results["identification"][condition] = _identification(
                first, second, data.identification
            )
        if "attributes" in protocols and len(set(CONDITION_SIDES[condition])) == 1:
            results["attributes"][condition] = _attributes(
                first_logits, data.attributes, tuple(getattr(model, "attribute_names", ()))
            )
    return results, pair_scores
