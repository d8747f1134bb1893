"""Evaluation figures as PNG files: ROC curves and the paper's Fig. 9 score histograms.

matplotlib draws with the Agg backend (no display needed); figures are closed
after saving, so long runs do not accumulate them.
"""

import pathlib

import numpy as np

from catface_keras.evaluation.roc import roc_curve

HISTOGRAM_BINS = np.linspace(-1.0, 1.0, 81)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_CONDITION_STYLES = ("-", "--", ":", "-.")


def plot_far_tar(lines, path, title, min_far=None):
    """ROC curves given as points, on a log-scale FAR axis.

    Args:
        lines: `(far, tar, options)` per curve: `(K,)` arrays in increasing FAR and
            matplotlib line keywords (`label`, `color`, `linestyle`).
        path: PNG file to write.
        title: figure title.
        min_far: left end of the FAR axis (default: the decade below the smallest
            positive FAR drawn).
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4.5))
    smallest = 1.0
    for far, tar, options in lines:
        # FAR = 0 has no place on a log axis; the curve starts at 1 / impostors.
        shown = far > 0
        axis.plot(far[shown], tar[shown], linewidth=1.5, **options)
        smallest = min(smallest, far[shown].min())
    axis.set_xscale("log")
    axis.set_xlim(10 ** np.floor(np.log10(smallest)) if min_far is None else min_far, 1.0)
    axis.set_ylim(0.0, 1.01)
    axis.set_xlabel("false accept rate (FAR)")
    axis.set_ylabel("true accept rate (TAR)")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    if any("label" in options for _, _, options in lines):
        axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(pathlib.Path(path), dpi=120)
    plt.close(figure)


def plot_roc_curves(scores_by_model, path, title):
    """ROC curves on a log-scale FAR axis, one colour per model, one line style per condition.

    Args:
        scores_by_model: dict model label -> dict condition (e.g. `"clean"`,
            `"degraded"`, `"mixed"`) -> `(scores, same)`, `(P,)` each.
        path: PNG file to write.
        title: figure title.
    """
    colours = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    lines = []
    for index, (label, by_condition) in enumerate(scores_by_model.items()):
        for style, (condition, (scores, same)) in zip(_CONDITION_STYLES, by_condition.items()):
            far, tar, _ = roc_curve(scores, same)
            lines.append((far, tar, {"color": colours[index % len(colours)], "linestyle": style,
                                     "label": f"{label} ({condition})"}))
    plot_far_tar(lines, path, title)


def plot_score_histograms(scores_by_model, path, title):
    """Cosine-score histograms of genuine and impostor pairs (paper Fig. 9).

    One panel per condition; in each, the models are overlaid, one colour
    each, genuine pairs solid and impostor pairs dashed.

    Args:
        scores_by_model: dict model label -> dict condition -> `(scores, same)`.
        path: PNG file to write.
        title: figure title.
    """
    plt = _pyplot()
    conditions = list(dict.fromkeys(
        condition for by_condition in scores_by_model.values() for condition in by_condition
    ))
    figure, axes = plt.subplots(
        1, len(conditions), figsize=(5.5 * len(conditions), 4), squeeze=False
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, condition in zip(axes[0], conditions):
        for index, (label, by_condition) in enumerate(scores_by_model.items()):
            if condition not in by_condition:
                continue
            colour = colours[index % len(colours)]
            scores, same = by_condition[condition]
            scores, same = np.asarray(scores), np.asarray(same, bool)
            axis.hist(scores[same], HISTOGRAM_BINS, density=True, histtype="step", color=colour,
                      linewidth=1.5, label=f"{label}: genuine")
            axis.hist(scores[~same], HISTOGRAM_BINS, density=True, histtype="step", color=colour,
                      linewidth=1.5, linestyle="--", label=f"{label}: impostor")
        axis.set_xlabel("cosine similarity")
        axis.set_ylabel("density")
        axis.set_title(condition)
        axis.legend(loc="upper left", fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(pathlib.Path(path), dpi=120)
    plt.close(figure)


def plot_cmc_curves(curves, path, title):
    """Cumulative match characteristic: identification rate against rank, one line per curve.

    Args:
        curves: dict label -> `(K,)` share of probes whose mate is within ranks 1 .. K.
        path: PNG file to write.
        title: figure title.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for label, curve in curves.items():
        curve = np.asarray(curve)
        axis.plot(np.arange(1, len(curve) + 1), curve, marker=".", linewidth=1.5, label=label)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_ylim(0.0, 1.01)
    axis.set_xlabel("rank")
    axis.set_ylabel("identification rate")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(pathlib.Path(path), dpi=120)
    plt.close(figure)
