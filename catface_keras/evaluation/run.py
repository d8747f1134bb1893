"""An evaluation run: models x protocols x conditions into a results folder.

Writes `results.json` (every number), `report.md` (the paper's tables) and
PNG figures: `roc_<protocol>.png` and `scores_<protocol>.png` (the paper's
Fig. 9, genuine and impostor cosine-score histograms, models overlaid) for
the pair protocols. Every file is written beside its old version and renamed
into place when complete; `results.json` comes last, so a folder holding one
holds a finished run.
"""

import datetime
import json
import os
import pathlib

import numpy as np

from catface_keras.atomic_files import write_atomically, write_text_atomically
from catface_keras.choices import EVALUATION_CONDITIONS as CONDITIONS
from catface_keras.degradation_config import DegradationConfig
from catface_keras.evaluation.calibration import (
    calibration_path,
    rates_at_thresholds,
    save_calibration,
    split_pairs,
    thresholds_at_fars,
)
from catface_keras.evaluation.erc import plot_erc
from catface_keras.evaluation.plots import plot_roc_curves, plot_score_histograms
from catface_keras.evaluation.recognizability import model_quality_erc
from catface_keras.evaluation.report import format_evaluation_report

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"

_PAIR_TITLES = {"verification": "1:1 verification", "templates": "template verification"}


class ResultsExistError(ValueError):
    """The output folder already holds a finished evaluation."""


def check_output_folder(out, overwrite):
    """Refuse a folder holding `results.json` unless `overwrite`."""
    results = pathlib.Path(out, RESULTS_FILE)
    if results.exists() and not overwrite:
        raise ResultsExistError(f"{results} exists; pass --overwrite to replace it")


def model_labels(paths):
    """Short unique labels for model files: the shortest path suffixes that tell them apart.

    `runs/a/stage1.keras` and `runs/b/stage1.keras` -> `a/stage1`, `b/stage1`
    (the suffix `.keras` dropped); a file given twice gets ` (2)`, ` (3)`, ...
    """
    parts = [pathlib.Path(os.path.abspath(path)).with_suffix("").parts for path in paths]
    labels = []
    for mine in parts:
        # Only different files need telling apart; one file given twice never can be.
        others = [other for other in parts if other != mine]
        length = 1
        while length < len(mine) and any(o[-length:] == mine[-length:] for o in others):
            length += 1
        labels.append("/".join(mine[-length:]))
    seen = {}
    for index, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[index] = f"{label} ({seen[label]})"
    return labels


def json_safe(value):
    """`value` with numpy scalars and arrays as Python ones, paths as str and NaN/inf as
    None, ready for `json.dumps`."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pathlib.PurePath):
        return str(value)
    return value


def _collect_notes(results):
    """The notes of every metric dict, once each: they depend on the data, so
    every model and condition repeats them; `where` names the protocol and set."""
    notes = []

    def walk(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "notes":
                    notes.extend(f"{where}: {note}" for note in item)
                else:
                    walk(item, f"{where} {key}")

    for by_protocol in results.values():
        for protocol, by_condition in by_protocol.items():
            for metrics in by_condition.values():
                walk(metrics, protocol)
    return list(dict.fromkeys(notes))


def _calibrate(labels, paths, scores, source, overwrite, flip, calibration_split=None, seed=1,
               calibration=None):
    """Writes each model's calibration sidecar (`calibration.save_calibration`) from its clean
    verification scores, from a `calibration_split` share of them (`split_pairs`, seeded
    by `seed`, the held-out rates recorded), or from `calibration`'s (the rates on the
    evaluated pairs recorded); an existing one is replaced only with `overwrite`.

    Args:
        calibration: None, or `(source, {label: (scores, same)})`: clean verification scores
            of each model on a separate pair file (`--calibration-pairs`).

    Returns:
        `(files, notes)`: dict label -> the file written (None if none) and notes.
    """
    files, notes = {}, []
    for label, path in zip(labels, paths):
        files[label] = None
        pair_scores = scores[label].get("verification", {}).get("clean")
        if pair_scores is None or not flip:
            continue
        split = held_out = checked_on = None
        fitted_source = source
        if calibration is not None:
            evaluated = pair_scores
            fitted_source, by_label = calibration
            pair_scores = by_label[label]
            thresholds = thresholds_at_fars(*pair_scores)
            checked_on = {"source": _pairs_description(source, evaluated[1]),
                          "pairs": len(evaluated[1])}
            held_out = rates_at_thresholds(*evaluated, thresholds)
        elif calibration_split is None:
            thresholds = thresholds_at_fars(*pair_scores)
        else:
            try:
                pair_scores, rest = _split_scores(pair_scores, calibration_split, seed)
            except ValueError as error:  # too few pairs of a kind to split
                notes.append(f"{label}: no calibration file written: {error}")
                continue
            thresholds = thresholds_at_fars(*pair_scores)
            split = {"fraction": float(calibration_split), "seed": int(seed),
                     "calibration_pairs": len(pair_scores[1]), "held_out_pairs": len(rest[1])}
            held_out = rates_at_thresholds(*rest, thresholds)
        sidecar = calibration_path(path)
        if not thresholds:
            continue
        if sidecar.exists() and not overwrite:
            notes.append(f"{label}: kept the calibration file {sidecar}; pass --overwrite to "
                         "replace it with thresholds from these pairs")
            continue
        files[label] = str(save_calibration(
            path, thresholds, _pairs_description(fitted_source, pair_scores[1]), split,
            held_out, checked_on,
        ))
    return files, notes


def _pairs_description(source, same):
    same = np.asarray(same, bool)
    return f"{source} ({int(same.sum())} genuine, {int((~same).sum())} impostor pairs, clean)"


def _split_scores(pair_scores, fraction, seed):
    """`(scores, same)` -> its calibration part and held-out part (`split_pairs`)."""
    scores, same = np.asarray(pair_scores[0]), np.asarray(pair_scores[1], bool)
    calibration, held_out = split_pairs(same, fraction, seed)
    return (scores[calibration], same[calibration]), (scores[held_out], same[held_out])


def _quality_curves(models, class_centres, labels, data, protocols, conditions, degradation,
                    seed, batch_size, cache):
    """Error-versus-reject curves of each model's verification pairs (degraded when that
    condition is evaluated, else clean): recognizability index vs feature norm vs random.

    Returns:
        `(quality, notes)`: dict label -> `{"condition", "curves"}`, and notes.
    """
    from catface_keras.evaluation.protocols import condition_images

    quality, notes = {}, []
    if "verification" not in protocols:
        return quality, notes
    side = "degraded" if "degraded" in conditions else "clean"
    pairs = data.verification
    for label, model, centres in zip(labels, models, class_centres):
        if centres is None:
            notes.append(f"{label}: an inference file has no AdaFace class centres, so no "
                         "recognizability index (give a training checkpoint for it)")
            continue
        images = condition_images(data.images, model.image_size, sorted({"clean", side}),
                                  degradation, seed, cache)
        try:
            curves = model_quality_erc(model, centres, images["clean"], images[side],
                                       pairs.first, pairs.second, pairs.same, batch_size,
                                       seed=seed)
        except ValueError as error:  # e.g. no impostor pairs to fix the threshold
            notes.append(f"{label}: no error-versus-reject curves ({error})")
            continue
        quality[label] = {"condition": side, "curves": curves}
    return quality, notes


def evaluate_models(models, paths, data, protocols, out, seed=1, batch_size=64,
                    overwrite=False, data_description=None, degradation=None,
                    conditions=None, threshold_search="insightface", flip=True,
                    class_centres=None, precisions=None, calibration_split=None,
                    calibration_data=None):
    """Evaluates each model on `data` (`protocols.evaluate`) and writes the results folder.

    Args:
        models: loaded models (see `evaluate`).
        paths: the file of each model, for the records and labels.
        data: an `EvaluationData`.
        protocols: names from `PROTOCOLS` that `data` defines.
        out: the results folder (created).
        seed: seed of the degraded copy.
        overwrite: replace an existing `results.json`.
        data_description: what `--data` said (defaults to `data.source`).
        degradation: the `DegradationConfig` of the degraded copy.
        conditions: names from `CONDITIONS` (default: all).
        threshold_search: of the 10-fold accuracy, `"insightface"` or `"exact"`.
        class_centres: per model, the `(C, D)` class centres of its training head or
            None (`load_model_and_class_centres`); error-versus-reject curves of the
            recognizability index need them.
        precisions: per model, what it computed in
            (`catface_keras.models.inference_precision.precision_record`), recorded
            under `models[i]["precision"]`; default: nothing recorded.
        calibration_split: None to calibrate `catface verify`'s thresholds on all the
            clean verification pairs; a share in (0, 1) to calibrate on that seeded
            share and record the FAR and TAR they give on the rest.
        calibration_data: an `EvaluationData` with verification pairs
            (`protocol_data.pairs_file_data`) to calibrate the thresholds on instead,
            recording the FAR and TAR they give on `data`'s clean pairs.

    Returns:
        The dict written to `results.json`.
    """
    # Imported here, not at module level: it loads TensorFlow, and the CLI
    # checks its output folder through this module before loading anything.
    from catface_keras.evaluation.protocols import degradation_record, evaluate

    degradation = DegradationConfig() if degradation is None else degradation
    conditions = tuple(CONDITIONS if conditions is None else conditions)
    out = pathlib.Path(out)
    check_output_folder(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    labels = model_labels(paths)
    results, scores, cache = {}, {}, {}
    for label, model in zip(labels, models):
        results[label], scores[label] = evaluate(
            model, data, protocols, conditions, degradation, seed, batch_size, flip,
            threshold_search=threshold_search, cache=cache,
        )
    plots = []
    for protocol, title in _PAIR_TITLES.items():
        if protocol not in protocols:
            continue
        by_model = {label: scores[label][protocol] for label in labels}
        name = f"roc_{protocol}.png"
        write_atomically(out / name, lambda path: plot_roc_curves(by_model, path, f"ROC, {title}"))
        plots.append(name)
        name = f"scores_{protocol}.png"
        write_atomically(out / name, lambda path: plot_score_histograms(
            by_model, path, f"Cosine scores, {title}"))
        plots.append(name)
    class_centres = [None] * len(models) if class_centres is None else class_centres
    quality, quality_notes = _quality_curves(models, class_centres, labels, data, protocols,
                                             conditions, degradation, seed, batch_size, cache)
    for index, (label, curves) in enumerate(quality.items()):
        name = "erc_verification.png" if len(models) == 1 else f"erc_verification_{index + 1}.png"
        write_atomically(out / name, lambda path: plot_erc(curves["curves"], path))
        plots.append(name)
    calibration_scores = None
    if calibration_data is not None and "verification" in protocols:
        calibration_scores = (calibration_data.source, {
            label: evaluate(model, calibration_data, ("verification",), ("clean",), degradation,
                            seed, batch_size, flip)[1]["verification"]["clean"]
            for label, model in zip(labels, models)
        })
    calibration, calibration_notes = _calibrate(labels, paths, scores, data_description or
                                                data.source, overwrite, flip,
                                                calibration_split, seed, calibration_scores)
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "protocols": list(protocols),
        "conditions": list(conditions),
        "threshold_search": threshold_search,
        "flip": bool(flip),
        "data": {"source": data_description or data.source, **data.info},
        "degradation": degradation_record(degradation, seed),
        "resize": "images not of a model's input size are resized with OpenCV: area "
                  "interpolation when shrinking, bilinear when enlarging",
        "models": [
            {"label": label, "path": str(path), "image_size": int(model.image_size),
             "attribute_names": list(getattr(model, "attribute_names", ())),
             **({} if precisions is None else {"precision": precision})}
            for label, path, model, precision in zip(
                labels, paths, models, precisions or [None] * len(models))
        ],
        "results": results,
        "plots": plots,
        "calibration": calibration,
        "quality": quality,
    }
    size = data.images.shape[1]
    report["notes"] = [
        f"{label}: the {size} px images are resized to its input, {model.image_size} px "
        "(OpenCV, area interpolation when shrinking, bilinear when enlarging)"
        for label, model in zip(labels, models) if int(model.image_size) != size
    ] + calibration_notes + quality_notes + _collect_notes(results)
    report = json_safe(report)
    write_text_atomically(format_evaluation_report(report), out / REPORT_FILE)
    write_text_atomically(json.dumps(report, indent=2) + "\n", out / RESULTS_FILE)
    return report
