"""The ROC of pair scores: TAR at FAR, area under the curve, equal error rate.

A pair is accepted when its score is at least the threshold. The ROC has one
point per distinct score, plus `(0, 0)` for a threshold above every score,
exactly as scikit-learn's `roc_curve(same, scores, drop_intermediate=False)`
(which this module does not import).
"""

import numpy as np

# One FAR per decade, the operating points face papers report.
FAR_DECADES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _check_scores(scores, same):
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    if scores.ndim != 1 or scores.shape != same.shape:
        raise ValueError(
            "`scores` and `same` must be 1-D and of one length. "
            f"Received: scores.shape={scores.shape}, same.shape={same.shape}"
        )
    if not same.any() or same.all():
        raise ValueError(
            "`same` must hold both genuine (True) and impostor (False) pairs. "
            f"Received: {int(same.sum())} genuine, {int((~same).sum())} impostor"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("`scores` must be finite. Received: a NaN or infinite score")
    return scores, same


def roc_curve(scores, same):
    """False and true accept rates at every distinct threshold.

    Args:
        scores: `(P,)` pair scores, higher meaning more alike.
        same: `(P,)` bools, True for genuine pairs; both kinds must occur.

    Returns:
        `(far, tar, thresholds)`, each `(T + 1,)` for `T` distinct scores:
        thresholds descending from `inf`, FAR and TAR non-decreasing from 0.
    """
    scores, same = _check_scores(scores, same)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_same = scores[order], same[order]
    # The last index of each run of tied scores: all of a tie is accepted at once.
    last = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    true_accepts = np.cumsum(sorted_same)[last]
    false_accepts = (last + 1) - true_accepts
    far = np.concatenate([[0.0], false_accepts / (~same).sum()])
    tar = np.concatenate([[0.0], true_accepts / same.sum()])
    thresholds = np.concatenate([[np.inf], sorted_scores[last]])
    return far, tar, thresholds


def roc_auc(scores, same):
    """Area under the ROC by the trapezoidal rule (ties count one half)."""
    far, tar, _ = roc_curve(scores, same)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def equal_error_rate(scores, same):
    """The rate where FAR equals the false reject rate `1 - TAR`.

    Found on the ROC polyline: between the two points where `FAR - (1 - TAR)`
    changes sign, FAR is interpolated linearly.
    """
    far, tar, _ = roc_curve(scores, same)
    gap = far - (1.0 - tar)  # from -1 to 1, non-decreasing
    index = int(np.argmax(gap >= 0))
    if gap[index] == 0:
        return float(far[index])
    step = (0.0 - gap[index - 1]) / (gap[index] - gap[index - 1])
    return float(far[index - 1] + step * (far[index] - far[index - 1]))


def threshold_at_far(scores, same, far):
    """The lowest score threshold whose false accept rate is at most `far`.

    Tie rule, *ties decided together*: a pair is accepted when
    `score >= threshold`, so pairs of equal score are all accepted or all
    rejected, and a tie that would take the FAR above `far` is rejected whole
    (genuine pairs in it too). The threshold is therefore one of the scores (the
    lowest accepted one), or `inf` when the impostors at the highest score
    already exceed `far`. `tar_at_fars` reports the TAR at this threshold.

    Args:
        scores: `(P,)` pair scores, higher meaning more alike.
        same: `(P,)` bools, True for genuine pairs; both kinds must occur.
        far: target false accept rate in (0, 1].

    Returns:
        float threshold.
    """
    if isinstance(far, bool) or not isinstance(far, (int, float)) or not 0 < far <= 1:
        raise ValueError(f"`far` must be a number in (0, 1]. Received: far={far!r}")
    rates, _, thresholds = roc_curve(scores, same)
    # The tolerance keeps a FAR of exactly k / num_impostor from rounding above `far`.
    return float(np.min(thresholds[rates <= far + 1e-12]))


def tar_at_fars(scores, same, fars=FAR_DECADES):
    """TAR at each target FAR: the largest TAR of an ROC point whose FAR <= target.

    A target below `1 / num_impostor_pairs` cannot be told apart from FAR = 0
    and gives `None`.

    Args:
        scores: `(P,)`.
        same: `(P,)` bools.
        fars: target false accept rates in (0, 1].

    Returns:
        `(tars, notes)`: dict `far -> TAR or None`, and a list of strings
        saying why values are None (empty when none is).
    """
    far, tar, _ = roc_curve(scores, same)
    num_impostor = int((~np.asarray(same, bool)).sum())
    tars, unmeasured = {}, []
    for target in fars:
        if not 0 < target <= 1:
            raise ValueError(f"`fars` must lie in (0, 1]. Received: fars={fars}")
        # The tolerance keeps 1e-3 * 1000 from rounding below one pair.
        if target * num_impostor < 1 - 1e-9:
            tars[target] = None
            unmeasured.append(f"{target:.0e}".replace("e-0", "e-"))
        else:
            tars[target] = float(np.max(tar[far <= target]))
    notes = []
    if unmeasured:
        notes.append(
            f"TAR at FAR {', '.join(unmeasured)} not measured: FAR f needs at least 1/f "
            f"impostor pairs, there are {num_impostor}"
        )
    return tars, notes


def far_key(far):
    """`1e-4` -> `"tar_at_far_1e-4"`, the metric's name in results."""
    return f"tar_at_far_{far:.0e}".replace("e-0", "e-")
