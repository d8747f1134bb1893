"""Error-versus-reject curves (ERC): how well a quality score predicts verification errors.

For verification pairs with scores, labels and a per-pair quality (the lower
of the two images' qualities), the decision threshold is fixed once, on all
pairs, at a target false match rate (FMR), by `roc.threshold_at_far` (the
calibration's rule: accepted when score >= threshold, ties decided together). Then the genuine pairs of lowest
quality are rejected, a fraction r at a time, and the false non-match rate
(FNMR) of the remaining genuine pairs at that threshold is the curve
FNMR(r). A good quality score makes the curve fall fast; the oracle, which
rejects exactly the false non-matches first, falls as
max(0, (E - k) / (G - k)) for E errors among G genuine pairs and k = floor(r G)
rejected; a random order keeps FNMR(r) about flat.
"""

import numpy as np

from catface_keras.evaluation.roc import threshold_at_far

DEFAULT_REJECT_RATES = tuple(np.round(np.linspace(0.0, 0.5, 11), 3))


def pair_quality(first_quality, second_quality):
    """A pair is as good as its worse image: elementwise minimum."""
    return np.minimum(np.asarray(first_quality, "float64"), np.asarray(second_quality, "float64"))


def error_versus_reject(scores, same, quality, fmr=1e-2, reject_rates=DEFAULT_REJECT_RATES):
    """FNMR at the fixed-FMR threshold after rejecting the lowest-quality genuine pairs.

    Args:
        scores: `(P,)` similarity per pair (higher: more alike).
        same: `(P,)` bools, True for genuine pairs.
        quality: `(P,)` pair quality (higher is better); ties keep pair order.
        fmr: target false match rate that fixes the threshold on all pairs.
        reject_rates: fractions of genuine pairs to reject, each in [0, 1).

    Returns:
        dict with `reject_rates`, `fnmr`, `oracle_fnmr` (lists), `threshold`.
    """
    scores = np.asarray(scores, "float64")
    same = np.asarray(same, bool)
    quality = np.asarray(quality, "float64")
    if not (scores.shape == same.shape == quality.shape) or scores.ndim != 1:
        raise ValueError(
            "`scores`, `same` and `quality` must be 1-D and equally long. Received shapes: "
            f"{scores.shape}, {same.shape}, {quality.shape}"
        )
    if same.all() or not same.any():
        raise ValueError("ERC needs genuine and impostor pairs. "
                         f"Received: {int(same.sum())} genuine, {int((~same).sum())} impostor")
    threshold = threshold_at_far(scores, same, fmr)
    genuine = np.flatnonzero(same)
    order = genuine[np.argsort(quality[genuine], kind="stable")]  # worst first
    errors = scores[order] < threshold  # accepted: score >= threshold
    total = len(order)
    fnmr, oracle = [], []
    for rate in reject_rates:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Reject rates must be in [0, 1). Received: {rate!r}")
        rejected = int(np.floor(rate * total))
        kept = total - rejected
        fnmr.append(float(errors[rejected:].sum() / kept))
        oracle.append(float(max(0, int(errors.sum()) - rejected) / kept))
    return {
        "reject_rates": [float(r) for r in reject_rates],
        "fnmr": fnmr,
        "oracle_fnmr": oracle,
        "threshold": float(threshold),
        "fmr": float(fmr),
    }


def erc_comparison(scores, same, qualities, fmr=1e-2, reject_rates=DEFAULT_REJECT_RATES, seed=0):
    """ERCs of several pair-quality scores plus a random order, on the same pairs.

    Args:
        qualities: dict name -> `(P,)` pair quality (e.g. `{"recognizability":
            ..., "feature_norm": ...}`).
        seed: of the `"random"` order added for reference.

    Returns:
        dict name -> `error_versus_reject` result, including `"random"`.
    """
    rng = np.random.default_rng(seed)
    curves = {name: error_versus_reject(scores, same, q, fmr, reject_rates)
              for name, q in qualities.items()}
    curves["random"] = error_versus_reject(scores, same, rng.random(len(scores)), fmr, reject_rates)
    return curves


def plot_erc(curves, path):
    """Writes the curves of `erc_comparison` (and the oracle) to an image file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4))
    first = next(iter(curves.values()))
    axis.plot(first["reject_rates"], first["oracle_fnmr"], "k:", label="oracle")
    for name, curve in curves.items():
        axis.plot(curve["reject_rates"], curve["fnmr"], marker="o", markersize=3, label=name)
    axis.set_xlabel("fraction of genuine pairs rejected")
    axis.set_ylabel(f"FNMR at FMR={first['fmr']:g}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
