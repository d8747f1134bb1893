"""Verification thresholds calibrated at a false accept rate, stored beside the model.

`catface evaluate` measures cosine scores of genuine and impostor pairs; the
threshold at a FAR is the lowest score threshold whose false accept rate on
the impostor pairs is at most that FAR (`roc.threshold_at_far`: a pair is
accepted when its score is >= the threshold, ties decided together). The thresholds are kept in a
sidecar JSON file next to the model, `stage2.keras` -> `stage2.calibration.json`:

    {"format": "catface-calibration", "version": 1,
     "model": "stage2.keras", "source": "lfw.bin (3000 genuine, 3000 impostor pairs)",
     "calibrated_on": "evaluated",
     "thresholds": {"1e-3": 0.312, "1e-4": 0.401}}

`calibrated_on` says which pairs the thresholds come from: `"evaluated"`, the
same pairs `catface evaluate` reports on (optimistic: the threshold is fitted to
them), or `"split"`, a seeded calibration share of them (`split_pairs`, `catface
evaluate --calibration-split 0.3`); then `split` records the share and
`held_out` the FAR and TAR each threshold gives on the other pairs, the rates a
user can expect on pairs the threshold has not seen:

     "calibrated_on": "split",
     "split": {"fraction": 0.3, "seed": 1, "calibration_pairs": 1800, "held_out_pairs": 4200},
     "held_out": {"1e-3": {"far": 0.0012, "tar": 0.981}}

`"pairs_file"`: a separate pair file (`catface evaluate --calibration-pairs FILE`, e.g.
other people's faces than the evaluated ones); `checked_on` names the evaluated pairs and
`held_out` the FAR and TAR each threshold gives on them:

     "calibrated_on": "pairs_file",
     "checked_on": {"source": "heldout/ (3000 genuine, 3000 impostor pairs, clean)", "pairs": 6000},
     "held_out": {"1e-3": {"far": 0.0009, "tar": 0.975}}

Files without the key (older ones) were calibrated on the evaluated pairs.
`catface verify` reads it (`load_threshold`, `describe_calibration`).
"""

import json
import math
import pathlib

import numpy as np

from catface_keras.atomic_files import write_text_atomically
from catface_keras.evaluation import roc
from catface_keras.evaluation.roc import FAR_DECADES

FORMAT = "catface-calibration"
VERSION = 1
SUFFIX = ".calibration.json"
# `calibrated_on` of thresholds fitted to a separate pair file (`--calibration-pairs`).
PAIRS_FILE = "pairs_file"


def calibration_path(model_path):
    """`runs/x/stage2.keras` -> `runs/x/stage2.calibration.json`."""
    model_path = pathlib.Path(model_path)
    return model_path.with_name(model_path.stem + SUFFIX)


def far_text(far):
    """The key of a FAR in the file: `0.001` -> `"1e-3"`, `0.05` -> `"5e-2"`."""
    mantissa, exponent = f"{float(far):e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _check_far(far):
    if isinstance(far, bool) or not isinstance(far, (int, float)) or not 0 < far < 1:
        raise ValueError(f"`far` must be a number in (0, 1). Received: far={far!r}")
    return float(far)


def threshold_at_far(scores, same, far):
    """`roc.threshold_at_far` (ties decided together), refused where the FAR cannot be measured.

    Args:
        scores: `(P,)` pair scores (cosine similarities), higher meaning more alike.
        same: `(P,)` bools, True for genuine pairs; both kinds must occur.
        far: target false accept rate in (0, 1).

    Returns:
        float threshold.

    Raises:
        ValueError: fewer than `1 / far` impostor pairs (the FAR cannot be measured).
    """
    far = _check_far(far)
    num_impostor = int((~np.asarray(same, bool)).sum())
    # The tolerance keeps 1e-3 * 1000 from rounding below one pair.
    if far * num_impostor < 1 - 1e-9:
        raise ValueError(
            f"A threshold at FAR {far_text(far)} needs at least {math.ceil(1 / far - 1e-9)} "
            f"impostor pairs. Received: {num_impostor}"
        )
    return roc.threshold_at_far(scores, same, far)


def thresholds_at_fars(scores, same, fars=FAR_DECADES):
    """`{far: threshold_at_far(...)}` for each FAR the impostor pairs can measure.

    FARs below `1 / num_impostor_pairs` are left out (an empty dict when none is measurable).
    """
    num_impostor = int((~np.asarray(same, bool)).sum())
    return {
        float(far): threshold_at_far(scores, same, far)
        for far in fars
        if _check_far(far) * num_impostor >= 1 - 1e-9
    }


def split_pairs(same, fraction, seed=1):
    """A seeded split of pairs into a calibration share and the held-out rest.

    Genuine and impostor pairs are split separately (each kind keeps its share), so
    both parts hold both kinds.

    Args:
        same: `(P,)` bools, True for genuine pairs.
        fraction: share of each kind for calibration, in (0, 1).
        seed: the split's seed (the same seed gives the same split).

    Returns:
        `(calibration, held_out)`: sorted int index arrays, disjoint, covering `0..P-1`.

    Raises:
        ValueError: `fraction` out of range, or a part would miss a kind of pair.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
        0 < fraction < 1
    ):
        raise ValueError(f"`fraction` must be a number in (0, 1). Received: fraction={fraction!r}")
    same = np.asarray(same, bool)
    rng = np.random.default_rng(seed)
    calibration = []
    for kind in (True, False):
        members = np.flatnonzero(same == kind)
        count = int(round(fraction * len(members)))
        if count < 1 or count >= len(members):
            raise ValueError(
                f"A calibration split of {fraction:g} leaves a part without "
                f"{'genuine' if kind else 'impostor'} pairs. Received: {len(members)} such pairs"
            )
        calibration.append(rng.choice(members, count, replace=False))
    calibration = np.sort(np.concatenate(calibration))
    held_out = np.setdiff1d(np.arange(len(same)), calibration)
    return calibration, held_out


def rates_at_thresholds(scores, same, thresholds):
    """`{far: {"far": measured FAR, "tar": measured TAR}}` of each threshold on these pairs
    (a pair is accepted when its score is >= the threshold)."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    return {
        far: {"far": float(np.mean(scores[~same] >= threshold)),
              "tar": float(np.mean(scores[same] >= threshold))}
        for far, threshold in thresholds.items()
    }


def save_calibration(model_path, thresholds, source, split=None, held_out=None,
                     checked_on=None):
    """Writes the sidecar calibration file of `model_path` atomically; returns its path.

    Args:
        model_path: the model file (`.keras`) the thresholds belong to.
        thresholds: dict `far -> threshold` (floats).
        source: a short description of the pairs they were measured on.
        split: None when the thresholds come from the evaluated pairs themselves; for a
            calibration split, `{"fraction", "seed", "calibration_pairs", "held_out_pairs"}`.
        held_out: with `split` or `checked_on`, `rates_at_thresholds` of the pairs the
            thresholds were not fitted to.
        checked_on: for thresholds from a separate pair file (`catface evaluate
            --calibration-pairs`), `{"source", "pairs"}` of the evaluated pairs that
            `held_out` was measured on.
    """
    if split is not None and checked_on is not None:
        raise ValueError("`split` and `checked_on` exclude each other. "
                         f"Received: split={split!r}, checked_on={checked_on!r}")
    if (split is None and checked_on is None) != (held_out is None):
        raise ValueError("`held_out` goes with `split` or `checked_on`. "
                         f"Received: split={split!r}, checked_on={checked_on!r}, "
                         f"held_out={held_out!r}")
    if not thresholds:
        raise ValueError(f"`thresholds` must hold at least one FAR. Received: {thresholds!r}")
    entries = {}
    for far, threshold in sorted(thresholds.items()):
        far = _check_far(far)
        if not math.isfinite(threshold):
            raise ValueError(
                f"thresholds[{far_text(far)}] must be finite. Received: {threshold!r}"
            )
        entries[far_text(far)] = float(threshold)
    path = calibration_path(model_path)
    content = {
        "format": FORMAT,
        "version": VERSION,
        "model": pathlib.Path(model_path).name,
        "source": str(source),
        "calibrated_on": (
            "split" if split is not None else PAIRS_FILE if checked_on is not None
            else "evaluated"
        ),
        "thresholds": entries,
    }
    if split is not None:
        content["split"] = dict(split)
    if checked_on is not None:
        content["checked_on"] = dict(checked_on)
    if held_out is not None:
        content["held_out"] = {
            far_text(far): {name: round(float(value), 6) for name, value in rates.items()}
            for far, rates in sorted(held_out.items())
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(json.dumps(content, indent=2) + "\n", path)
    return path


def _how_to_create(model_path):
    return (
        f"calibrate with `catface evaluate --model {model_path} --data PAIRS --out DIR "
        "[--calibration-split 0.3]` (it writes this file), or pass --threshold"
    )


def load_calibration(model_path):
    """The sidecar file's content (`thresholds` keyed by `far_text`)."""
    path = calibration_path(model_path)
    if not path.is_file():
        raise ValueError(
            f"No calibration file {path} for model {model_path}: {_how_to_create(model_path)}"
        )
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Calibration file {path} is not readable JSON: {error}") from error
    thresholds = content.get("thresholds") if isinstance(content, dict) else None
    if (
        not isinstance(content, dict)
        or content.get("format") != FORMAT
        or not isinstance(thresholds, dict)
        or not all(isinstance(value, (int, float)) for value in thresholds.values())
    ):
        raise ValueError(
            f"Calibration file {path} is not a {FORMAT} file (expected keys format, "
            "thresholds {far: threshold})"
        )
    return content


def load_threshold(model_path, far):
    """The threshold stored for `model_path` at `far`.

    Raises:
        ValueError: no calibration file (the message says how to make one),
            or none at this FAR (the message lists those it has).
    """
    far = _check_far(far)
    content = load_calibration(model_path)
    key = far_text(far)
    stored = {far_text(float(name)): value for name, value in content["thresholds"].items()}
    if key not in stored:
        raise ValueError(
            f"Calibration file {calibration_path(model_path)} has no threshold at FAR {key} "
            f"(it has FAR {', '.join(sorted(stored)) or 'none'}): pick one of those with --far, "
            f"or {_how_to_create(model_path)}"
        )
    return float(stored[key])


def describe_calibration(model_path, far):
    """Where the threshold at `far` came from, for `catface verify`'s output.

    `"calibrated on the evaluated pairs of SOURCE"` (the pairs evaluate reported on),
    or for a split `"calibrated on a 30 % split of SOURCE; on the 4200 held-out pairs
    FAR 1.2e-3, TAR 0.981"`.
    """
    content = load_calibration(model_path)
    source = content.get("source", "unknown pairs")
    split, checked = content.get("split"), content.get("checked_on")
    calibrated_on = content.get("calibrated_on", "evaluated")
    if calibrated_on == "split" and isinstance(split, dict):
        text = f"calibrated on a {100 * float(split.get('fraction', 0)):g} % split of {source}"
        checked_text = f"the {split.get('held_out_pairs', '?')} held-out pairs"
    elif calibrated_on == PAIRS_FILE and isinstance(checked, dict):
        text = f"calibrated on the separate pairs of {source}"
        checked_text = (f"the {checked.get('pairs', '?')} evaluated pairs of "
                        f"{checked.get('source', 'unknown pairs')}")
    else:
        return f"calibrated on the evaluated pairs of {source} (no held-out check)"
    rates = content.get("held_out", {}).get(far_text(_check_far(far)))
    if isinstance(rates, dict) and {"far", "tar"} <= set(rates):
        text += f"; on {checked_text} FAR {rates['far']:.2g}, TAR {rates['tar']:.3f}"
    return text
