"""1:1 verification metrics: pairs, best-threshold and 10-fold accuracy, TAR at FAR.

Scores are cosine similarities of L2-normalised embeddings; `same` marks
genuine (same identity) pairs.
"""

import numpy as np

from catface_keras.evaluation.roc import (
    FAR_DECADES,
    equal_error_rate,
    far_key,
    roc_auc,
    tar_at_fars,
)


def sample_verification_pairs(identities, num_pairs, seed=0):
    """Genuine and impostor pairs of image indices, as many of each.

    Args:
        identities: `(N,)` identity labels of the images.
        num_pairs: pairs of each kind; fewer genuine pairs are returned when
            the data has fewer.
        seed: sampling seed.

    Returns:
        `(first, second, same)`: `(P,)` int indices and `(P,)` bools.
    """
    identities = np.asarray(identities)
    rng = np.random.default_rng(seed)
    genuine = []
    for identity in np.unique(identities):
        members = np.flatnonzero(identities == identity)
        first, second = np.triu_indices(len(members), k=1)
        genuine.append(np.stack([members[first], members[second]], axis=1))
    genuine = np.concatenate(genuine) if genuine else np.zeros((0, 2), np.int64)
    if len(genuine) == 0:
        raise ValueError("No identity has two images: no genuine pair can be formed.")
    if len(genuine) > num_pairs:
        genuine = genuine[rng.choice(len(genuine), num_pairs, replace=False)]
    impostor = np.zeros((0, 2), np.int64)
    while len(impostor) < len(genuine):
        candidates = rng.integers(0, len(identities), size=(2 * len(genuine), 2))
        candidates = candidates[identities[candidates[:, 0]] != identities[candidates[:, 1]]]
        impostor = np.concatenate([impostor, candidates])
        if len(np.unique(identities)) < 2:
            raise ValueError("Only one identity: no impostor pair can be formed.")
    impostor = impostor[: len(genuine)]
    pairs = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    return pairs[:, 0], pairs[:, 1], same


def cosine_scores(first, second):
    """Row-wise cosine similarity of two `(P, D)` embedding arrays -> `(P,)`."""
    first = first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-12)
    second = second / np.maximum(np.linalg.norm(second, axis=1, keepdims=True), 1e-12)
    return np.sum(first * second, axis=1)


def _check_scores(scores, same):
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    if scores.shape != same.shape or scores.ndim != 1:
        raise ValueError(
            "`scores` and `same` must be 1-D and of one length. "
            f"Received: scores.shape={scores.shape}, same.shape={same.shape}"
        )
    return scores, same


def best_threshold_accuracy(scores, same):
    """Accuracy of `score > threshold` at the best threshold.

    Returns:
        `(accuracy, threshold)`. Every midpoint between consecutive distinct
        scores (and both ends) is tried, in O(P log P).
    """
    scores, same = _check_scores(scores, same)
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_same = scores[order], same[order]
    # Rejecting the k lowest scores: correct = negatives among them + positives above.
    negatives_below = np.concatenate([[0], np.cumsum(~sorted_same)])
    positives_above = same.sum() - np.concatenate([[0], np.cumsum(sorted_same)])
    correct = negatives_below + positives_above
    # Only cut between distinct scores, so that ties fall on one side.
    valid = np.ones(len(scores) + 1, bool)
    valid[1:-1] = sorted_scores[1:] != sorted_scores[:-1]
    best = int(np.argmax(np.where(valid, correct, -1)))
    if best == 0:
        threshold = sorted_scores[0] - 1e-6
    elif best == len(scores):
        threshold = sorted_scores[-1]
    else:
        threshold = 0.5 * (sorted_scores[best - 1] + sorted_scores[best])
    return correct[best] / len(scores), float(threshold)


def tar_at_far(scores, same, far):
    """True accept rate at the largest threshold whose false accept rate <= `far`.

    A pair is accepted when its score is strictly above the threshold. At
    least `1 / far` impostor pairs are needed for the FAR to be measurable.
    """
    scores, same = _check_scores(scores, same)
    impostor = np.sort(scores[~same])[::-1]
    genuine = scores[same]
    if len(genuine) == 0 or len(impostor) * far < 1:
        raise ValueError(
            f"TAR at FAR={far} needs genuine pairs and at least {int(np.ceil(1 / far))} "
            f"impostor pairs. Received: {len(genuine)} genuine, {len(impostor)} impostor"
        )
    allowed = int(np.floor(far * len(impostor)))
    if allowed >= len(impostor):
        return 1.0
    threshold = impostor[allowed]
    return float(np.mean(genuine > threshold))


def verification_metrics(first, second, same, fars=(1e-2,)):
    """Accuracy at the best threshold and TAR at each FAR for embedding pairs.

    Args:
        first, second: `(P, D)` embeddings of each pair's two images.
        same: `(P,)` bools.

    Returns:
        dict with `accuracy`, `threshold` and `tar_at_far_<far>` (e.g.
        `tar_at_far_1e-2`).
    """
    scores = cosine_scores(first, second)
    accuracy, threshold = best_threshold_accuracy(scores, same)
    metrics = {"accuracy": float(accuracy), "threshold": threshold}
    for far in fars:
        metrics[f"tar_at_far_{far:.0e}".replace("e-0", "e-")] = tar_at_far(scores, same, far)
    return metrics


def kfold_accuracy(scores, same, num_folds=10):
    """Verification accuracy by cross-validation, as insightface reports it.

    The pairs are cut, in their given order, into `num_folds` contiguous
    folds (the first `P % num_folds` folds one pair longer, as scikit-learn's
    unshuffled `KFold`). For each fold the best threshold of the other folds
    (`best_threshold_accuracy`) is applied to it: a pair is accepted when its
    score is above the threshold.

    Args:
        scores: `(P,)` pair scores.
        same: `(P,)` bools.
        num_folds: int >= 2, at most `P`.

    Returns:
        dict with `accuracy_mean`, `accuracy_std` (population std over the
        folds), `fold_accuracies` and `fold_thresholds` (lists of floats).
    """
    scores, same = _check_scores(scores, same)
    if isinstance(num_folds, bool) or not isinstance(num_folds, (int, np.integer)):
        raise ValueError(f"`num_folds` must be an int >= 2. Received: num_folds={num_folds!r}")
    if not 2 <= num_folds <= len(scores):
        raise ValueError(
            f"`num_folds` must be in [2, number of pairs = {len(scores)}]. "
            f"Received: num_folds={num_folds}"
        )
    accuracies, thresholds = [], []
    for fold in np.array_split(np.arange(len(scores)), num_folds):
        train = np.ones(len(scores), bool)
        train[fold] = False
        _, threshold = best_threshold_accuracy(scores[train], same[train])
        accuracies.append(float(np.mean((scores[fold] > threshold) == same[fold])))
        thresholds.append(threshold)
    return {
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "fold_accuracies": accuracies,
        "fold_thresholds": thresholds,
    }


def verification_summary(scores, same, fars=FAR_DECADES, num_folds=10):
    """Every 1:1 verification number of the paper's protocols for one score set.

    Args:
        scores: `(P,)` cosine scores of pairs (see `cosine_scores`).
        same: `(P,)` bools, both kinds present.
        fars: target FARs for `tar_at_fars`.
        num_folds: folds of `kfold_accuracy` (as many as pairs when fewer).

    Returns:
        dict: `accuracy_mean`, `accuracy_std`, `fold_accuracies`,
        `fold_thresholds`, `auc`, `eer`, `tar_at_far_<far>` for each far
        (`tar_at_far_1e-4`; None when too few impostor pairs), `num_pairs`,
        `num_genuine`, `num_impostor` and `notes` (list of strings).
    """
    scores, same = _check_scores(scores, same)
    notes = []
    if len(scores) < num_folds:
        notes.append(
            f"{len(scores)} pairs: {len(scores)}-fold accuracy instead of {num_folds}-fold"
        )
        num_folds = max(len(scores), 2)
    summary = kfold_accuracy(scores, same, num_folds)
    summary["auc"] = roc_auc(scores, same)
    summary["eer"] = equal_error_rate(scores, same)
    tars, far_notes = tar_at_fars(scores, same, fars)
    notes += far_notes
    for far, tar in tars.items():
        summary[far_key(far)] = tar
    summary.update(
        num_pairs=int(len(scores)),
        num_genuine=int(same.sum()),
        num_impostor=int((~same).sum()),
        notes=notes,
    )
    return summary
