"""Verification thresholds calibrated at a false accept rate, stored beside the model.

`catface evaluate` measures cosine scores of genuine and impostor pairs; the
threshold at a FAR is the lowest score threshold whose false accept rate on
the impostor pairs is at most that FAR (`roc.threshold_at_far`: a pair is
accepted when its score is >= the threshold, ties decided together). The thresholds are kept in a
sidecar JSON file next to the model, `stage2.keras` -> `stage2.calibration.json`:

    {"format": "catface-calibration", "version": 1,
     "model": "stage2.keras", "source": "lfw.bin (3000 genuine, 3000 impostor pairs)",
     "thresholds": {"1e-3": 0.312, "1e-4": 0.401}}

`catface verify` reads it (`load_threshold`).
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


def save_calibration(model_path, thresholds, source):
    """Writes the sidecar calibration file of `model_path` atomically; returns its path.

    Args:
        model_path: the model file (`.keras`) the thresholds belong to.
        thresholds: dict `far -> threshold` (floats).
        source: a short description of the pairs they were measured on.
    """
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
        "thresholds": entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(json.dumps(content, indent=2) + "\n", path)
    return path


def _how_to_create(model_path):
    return (
        f"calibrate with `catface evaluate --model {model_path} --data PAIRS --out DIR` "
        "(it writes this file), or pass --threshold"
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
