"""1:1 verification: pairs, 10-fold accuracy (insightface's protocol by default), ROC numbers.

Pairs are compared by the squared L2 distance of their L2-normalised
embeddings (`pair_distances`, in [0, 4]; a pair is predicted "same" when the
distance is below the threshold) for the accuracy, and by cosine similarity
(`2 - 2 cos = distance`) for the ROC, TAR at FAR, AUC, EER and the plots.

10-fold accuracy, `threshold_search="insightface"` (the default): the
protocol of insightface's `eval/verification.py` (`calculate_roc`), which
AdaFace and most papers report on LFW, CFP-FP, AgeDB-30: the pairs, in their
given order, are cut into 10 contiguous folds (scikit-learn's unshuffled
`KFold`: the first `P % 10` folds one pair longer); for each fold, the
threshold among `np.arange(0, 4, 0.01)` with the best accuracy on the other
nine folds (the first, i.e. strictest, on a tie) is applied to it; the mean
and the population std of the ten fold accuracies are reported.
`threshold_search="exact"` tries every midpoint between consecutive distinct
distances of the other folds (and one below and one above them all), also
keeping the strictest of equally accurate thresholds.
"""

import numpy as np

from catface_keras.choices import THRESHOLD_SEARCHES
from catface_keras.evaluation.roc import (
    FAR_DECADES,
    equal_error_rate,
    far_key,
    roc_auc,
    tar_at_fars,
)
from catface_keras.unit_vectors import l2_normalize

# insightface's grid of squared-L2 thresholds (exactly this float sequence).
INSIGHTFACE_THRESHOLDS = np.arange(0, 4, 0.01)


def sample_verification_pairs(identities, num_pairs, seed=0):
    """Genuine and impostor pairs of image indices, as many of each.

    Args:
        identities: `(N,)` identity labels of the images.
        num_pairs: pairs of each kind; fewer genuine pairs are returned when
            the data has fewer.
        seed: sampling seed.

    Returns:
        `(first, second, same)`: `(P,)` int indices and `(P,)` bools, the
        genuine pairs (in identity order) before the impostor pairs.
    """
    identities = np.asarray(identities)
    if len(np.unique(identities)) < 2:
        raise ValueError("Only one identity: no impostor pair can be formed.")
    rng = np.random.default_rng(seed)
    genuine = []
    for identity in np.unique(identities):
        members = np.flatnonzero(identities == identity)
        first, second = np.triu_indices(len(members), k=1)
        genuine.append(np.stack([members[first], members[second]], axis=1))
    genuine = np.concatenate(genuine)
    if len(genuine) == 0:
        raise ValueError("No identity has two images: no genuine pair can be formed.")
    if len(genuine) > num_pairs:
        genuine = genuine[np.sort(rng.choice(len(genuine), num_pairs, replace=False))]
    impostor = np.zeros((0, 2), np.int64)
    while len(impostor) < len(genuine):
        candidates = rng.integers(0, len(identities), size=(2 * len(genuine), 2))
        candidates = candidates[identities[candidates[:, 0]] != identities[candidates[:, 1]]]
        impostor = np.concatenate([impostor, candidates])
    impostor = impostor[: len(genuine)]
    pairs = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    return pairs[:, 0], pairs[:, 1], same


def cosine_scores(first, second):
    """Row-wise cosine similarity of two `(P, D)` embedding arrays -> `(P,)` float64."""
    return np.sum(l2_normalize(first) * l2_normalize(second), axis=1)


def _unit_rows(features):
    # Rows already of unit norm are used as they are: normalising them again
    # can move a distance by an ulp, and across one of insightface's thresholds.
    features = np.asarray(features, np.float64)
    norms = np.linalg.norm(features, axis=1)
    return features if np.all(np.abs(norms - 1) < 1e-9) else l2_normalize(features)


def pair_distances(first, second):
    """Squared L2 distance of the L2-normalised rows of two `(P, D)` arrays -> `(P,)` float64.

    Rows already of unit norm (as `extract_features` returns them) are not
    normalised again, so the distances are insightface's to the last bit.
    """
    return np.sum(np.square(_unit_rows(first) - _unit_rows(second)), axis=1)


def _check_pairs(values, same, name):
    values = np.asarray(values, np.float64)
    same = np.asarray(same, bool)
    if values.ndim != 1 or values.shape != same.shape:
        raise ValueError(
            f"`{name}` and `same` must be 1-D and of one length. "
            f"Received: {name}.shape={values.shape}, same.shape={same.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must be finite. Received: a NaN or infinite value")
    return values, same


def best_grid_threshold(distances, same, thresholds=INSIGHTFACE_THRESHOLDS):
    """The first threshold of `thresholds` (ascending) with the most correct `distance < t`.

    Returns:
        `(threshold, accuracy)` on the given pairs.
    """
    distances, same = _check_pairs(distances, same, "distances")
    thresholds = np.asarray(thresholds, np.float64)
    # Correct at threshold t: genuine pairs below t plus impostor pairs at or above t.
    order = np.sort(distances[same]), np.sort(distances[~same])
    genuine_below = np.searchsorted(order[0], thresholds, side="left")
    impostor_at_or_above = len(order[1]) - np.searchsorted(order[1], thresholds, side="left")
    correct = genuine_below + impostor_at_or_above
    best = int(np.argmax(correct))
    return float(thresholds[best]), float(correct[best] / len(distances))


def best_exact_threshold(distances, same):
    """The strictest threshold with the most correct `distance < t`, over all cuts.

    Candidates: below the smallest distance, every midpoint between
    consecutive distinct distances, and above the largest one.

    Returns:
        `(threshold, accuracy)` on the given pairs.
    """
    distances, same = _check_pairs(distances, same, "distances")
    values = np.unique(distances)
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2,
                                 [values[-1] + 1.0]])
    return best_grid_threshold(distances, same, candidates)


def fold_indices(num_pairs, num_folds=10, folds=None):
    """The test indices of each fold.

    Args:
        num_pairs: P.
        num_folds: contiguous folds in pair order (scikit-learn's `KFold`
            without shuffling), used when `folds` is None.
        folds: optional `(P,)` fold label of each pair (e.g. LFW's ten
            sets); folds are taken in sorted label order.

    Returns:
        list of int arrays.
    """
    if folds is not None:
        folds = np.asarray(folds)
        if folds.shape != (num_pairs,):
            raise ValueError(f"`folds` must label every pair. Received: folds.shape="
                             f"{folds.shape} for {num_pairs} pairs")
        return [np.flatnonzero(folds == label) for label in np.unique(folds)]
    if isinstance(num_folds, bool) or not isinstance(num_folds, (int, np.integer)):
        raise ValueError(f"`num_folds` must be an int >= 2. Received: num_folds={num_folds!r}")
    if not 2 <= num_folds <= num_pairs:
        raise ValueError(
            f"`num_folds` must be in [2, number of pairs = {num_pairs}]. "
            f"Received: num_folds={num_folds}"
        )
    return np.array_split(np.arange(num_pairs), num_folds)


def kfold_accuracy(distances, same, num_folds=10, folds=None, threshold_search="insightface"):
    """Verification accuracy by cross-validation (see the module docstring).

    Args:
        distances: `(P,)` squared L2 distances of normalised embeddings
            (`pair_distances`); "same" is predicted below the threshold.
        same: `(P,)` bools.
        num_folds, folds: as in `fold_indices`.
        threshold_search: `"insightface"` (the 0.01 grid on [0, 4)) or
            `"exact"` (every midpoint of the training folds' distances).

    Returns:
        dict with `accuracy` (mean over folds), `accuracy_std` (population
        std), `fold_accuracies` and `fold_thresholds` (lists of floats).
    """
    distances, same = _check_pairs(distances, same, "distances")
    if threshold_search not in THRESHOLD_SEARCHES:
        raise ValueError(f"`threshold_search` must be one of {THRESHOLD_SEARCHES}. "
                         f"Received: threshold_search={threshold_search!r}")
    accuracies, thresholds = [], []
    for test in fold_indices(len(distances), num_folds, folds):
        train = np.ones(len(distances), bool)
        train[test] = False
        if threshold_search == "insightface":
            threshold, _ = best_grid_threshold(distances[train], same[train])
        else:
            threshold, _ = best_exact_threshold(distances[train], same[train])
        accuracies.append(float(np.mean((distances[test] < threshold) == same[test])))
        thresholds.append(threshold)
    return {
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "fold_accuracies": accuracies,
        "fold_thresholds": thresholds,
    }


def verification_summary(first, second, same, fars=FAR_DECADES, num_folds=10, folds=None,
                         threshold_search="insightface"):
    """Every 1:1 verification number for pairs of embeddings.

    Args:
        first, second: `(P, D)` embeddings of each pair's two sides
            (normalised here).
        same: `(P,)` bools, both kinds present.
        fars: target FARs for `tar_at_fars`.
        num_folds, folds, threshold_search: as in `kfold_accuracy`; with
            fewer pairs than `num_folds`, one fold per pair.

    Returns:
        `(summary, scores)`: `summary` holds `accuracy`, `accuracy_std`,
        `fold_accuracies`, `fold_thresholds`, `auc`, `eer`,
        `tar_at_far_<far>` for each far (None when too few impostor pairs),
        `num_pairs`, `num_genuine`, `num_impostor`, `threshold_search` and
        `notes` (list of strings); `scores` are the `(P,)` cosine scores.
    """
    scores, same = cosine_scores(first, second), np.asarray(same, bool)
    auc = roc_auc(scores, same)  # first: it checks shapes, finiteness and both kinds present
    notes = []
    if folds is None and len(scores) < num_folds:
        notes.append(
            f"{len(scores)} pairs: {len(scores)}-fold accuracy instead of {num_folds}-fold"
        )
        num_folds = max(len(scores), 2)
    summary = kfold_accuracy(pair_distances(first, second), same, num_folds, folds,
                             threshold_search)
    summary["auc"] = auc
    summary["eer"] = equal_error_rate(scores, same)
    tars, far_notes = tar_at_fars(scores, same, fars)
    notes += far_notes
    for far, tar in tars.items():
        summary[far_key(far)] = tar
    summary.update(
        num_pairs=int(len(scores)),
        num_genuine=int(same.sum()),
        num_impostor=int((~same).sum()),
        threshold_search=threshold_search,
        notes=notes,
    )
    return summary, scores
