"""An evaluation run: models x protocols x (clean, distorted) into a results folder.

Writes `results.json` (every number), `report.md` (the paper's tables) and
PNG figures: `roc_<protocol>.png` and `scores_<protocol>.png` (the paper's
Fig. 9, genuine and impostor cosine-score histograms, models overlaid) for
the pair protocols. `results.json` is written last, through a temporary file,
so a folder holding one holds a finished run.
"""

import datetime
import json
import os
import pathlib

import numpy as np

from catface_keras.evaluation.plots import plot_roc_curves, plot_score_histograms
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
    """Short unique labels for model files: their stems, or indexed stems on a clash."""
    stems = [pathlib.Path(path).stem for path in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{index + 1}:{stem}" for index, stem in enumerate(stems)]


def _json_safe(value):
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
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


def evaluate_models(models, paths, data, protocols, out, distortion_seed=1, batch_size=64,
                    overwrite=False, data_description=None):
    """Evaluates each model on `data` and writes the results folder.

    Args:
        models: loaded models (see `evaluate_protocols`).
        paths: the file of each model, for the records.
        data: an `EvaluationData`.
        protocols: names from `PROTOCOLS` that `data` defines.
        out: the results folder (created).
        distortion_seed: seed of the distorted copy (`distorted_images`).
        overwrite: replace an existing `results.json`.
        data_description: what `--data` said (defaults to `data.source`).

    Returns:
        The dict written to `results.json`.
    """
    # Imported here, not at module level: it loads TensorFlow, and the CLI
    # checks its output folder through this module before loading anything.
    from catface_keras.evaluation.protocols import CONDITIONS, distorted_images, evaluate_protocols

    out = pathlib.Path(out)
    check_output_folder(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    images = {"clean": data.images, "distorted": distorted_images(data.images, distortion_seed)}
    labels = model_labels(paths)
    results, scores = {}, {}
    for label, model in zip(labels, models):
        results[label], scores[label] = evaluate_protocols(
            model, data, protocols, images, batch_size
        )
    plots = []
    for protocol, title in _PAIR_TITLES.items():
        if protocol not in protocols:
            continue
        by_model = {label: scores[label][protocol] for label in labels}
        name = f"roc_{protocol}.png"
        plot_roc_curves(by_model, out / name, f"ROC, {title}")
        plots.append(name)
        name = f"scores_{protocol}.png"
        plot_score_histograms(by_model, out / name, f"Cosine scores, {title}")
        plots.append(name)
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "protocols": list(protocols),
        "conditions": list(CONDITIONS),
        "data": {"source": data_description or data.source, **data.info},
        "distortion": {"function": "catface_keras.degrade.degrade", "seed": distortion_seed,
                       "what": "every image of the data, the training mix of turbulence "
                               "and camera styles"},
        "resize": "images not of a model's input size are resized with OpenCV: area "
                  "interpolation when shrinking, bilinear when enlarging",
        "models": [
            {"label": label, "path": str(path), "image_size": int(model.image_size),
             "attribute_names": list(model.attribute_names)}
            for label, path, model in zip(labels, paths, models)
        ],
        "results": results,
        "plots": plots,
    }
    size = data.images.shape[1]
    report["notes"] = [
        f"{label}: the {size} px images are resized to its input, {model.image_size} px "
        "(OpenCV, area interpolation when shrinking, bilinear when enlarging)"
        for label, model in zip(labels, models) if int(model.image_size) != size
    ] + _collect_notes(results)
    report = _json_safe(report)
    (out / REPORT_FILE).write_text(format_evaluation_report(report), encoding="utf-8")
    temporary = out / (RESULTS_FILE + ".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, out / RESULTS_FILE)
    return report
