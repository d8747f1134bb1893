"""Per-attribute scores of soft-biometric predictions: accuracy, the majority
class's base rate, and balanced accuracy with a 95 % interval.

Accuracy alone flatters a rare attribute: CelebA's Bald is 2.5 % positive, so
always answering "not bald" scores 0.975. Balanced accuracy, the mean of the
true-positive and true-negative rates, is 0.5 for any constant predictor.
"""

import math

import numpy as np

from catface_keras.soft_biometrics import MISSING_LABEL

# Two-sided 95 % normal quantile.
Z_95 = 1.959963984540054


def wilson_interval(successes, trials, z=Z_95):
    """Wilson score interval of a binomial proportion.

    Returns:
        `(low, high)`, or `(nan, nan)` for `trials == 0`.
    """
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def binary_attribute_scores(labels, predictions):
    """Scores of one attribute's labelled images.

    Args:
        labels: `(N,)` bools, the true classes.
        predictions: `(N,)` bools.

    Returns:
        dict with `accuracy`, `majority_rate` (the share of the more frequent
        class: the accuracy of the best constant predictor),
        `balanced_accuracy` ((TPR + TNR) / 2), `balanced_accuracy_ci`
        (`[low, high]`: the mean of the per-class Wilson 95 % bounds of TPR and
        TNR, a conservative interval: it covers whenever both class intervals
        do), `num_labelled` and `num_positive`. Rates of an absent class, and
        balanced accuracy then, are NaN.
    """
    labels = np.asarray(labels, bool)
    predictions = np.asarray(predictions, bool)
    total = len(labels)
    positives = int(labels.sum())
    negatives = total - positives
    true_positives = int(np.sum(predictions & labels))
    true_negatives = int(np.sum(~predictions & ~labels))
    if positives and negatives:
        balanced = (true_positives / positives + true_negatives / negatives) / 2
        (tpr_low, tpr_high) = wilson_interval(true_positives, positives)
        (tnr_low, tnr_high) = wilson_interval(true_negatives, negatives)
        interval = [(tpr_low + tnr_low) / 2, (tpr_high + tnr_high) / 2]
    else:
        balanced, interval = math.nan, [math.nan, math.nan]
    return {
        "accuracy": (true_positives + true_negatives) / total if total else math.nan,
        "majority_rate": max(positives, negatives) / total if total else math.nan,
        "balanced_accuracy": balanced,
        "balanced_accuracy_ci": interval,
        "num_labelled": total,
        "num_positive": positives,
    }


def _check_shapes(labels, logits, attribute_names):
    if labels.shape != logits.shape or labels.ndim != 2 or labels.shape[1] != len(attribute_names):
        raise ValueError(
            "`labels`, `logits` and `attribute_names` disagree on the attributes. "
            f"Received: labels.shape={labels.shape}, logits.shape={logits.shape}, "
            f"{len(attribute_names)} names"
        )


def attribute_scores(labels, logits, attribute_names):
    """`binary_attribute_scores` of `logit > 0` per attribute, over the labelled images only.

    Args:
        labels: `(N, A)` ints in {-1, 0, 1}; -1 is unknown and skipped.
        logits: `(N, A)`.
        attribute_names: `A` names.

    Returns:
        dict name -> scores (NaN values for an attribute with no label).
    """
    labels, logits = np.asarray(labels), np.asarray(logits)
    _check_shapes(labels, logits, attribute_names)
    scores = {}
    for column, name in enumerate(attribute_names):
        known = labels[:, column] != MISSING_LABEL
        scores[name] = binary_attribute_scores(labels[known, column] == 1,
                                               logits[known, column] > 0)
    return scores


def attribute_accuracy(labels, logits, attribute_names):
    """Accuracy of `logit > 0` per attribute (see `attribute_scores`).

    Returns:
        dict name -> accuracy (NaN for an attribute with no label).
    """
    return {name: scores["accuracy"]
            for name, scores in attribute_scores(labels, logits, attribute_names).items()}
