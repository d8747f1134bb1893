"""`catface benchmark`: every official benchmark found under a root, for one or more models.

Each benchmark module (`BENCHMARK_MODULES`) exposes `find(root) -> [names]`
(the sets of its kind under `root`), optionally `check(name, root, **options)`
(reads its lists and meta files before any model is loaded) and
`run(name, root, extractor, out_dir, **options) -> {column key: fraction}`: it
embeds through `extractor` (a `feature_store.FeatureExtractor`), writes its report
into `out_dir` and returns its table cells (keys beyond `table.COLUMNS` go to
`results.json` only). Each gets the options its signature names (all of them with
`**options`): `flip`, `norm_score`, `detector_score`, `batch_size`,
`scface_test_subjects`, `label`. A module that is not there (the IJB one on a
branch without it) is skipped.

Output folder:

    OUT/table.md, table.csv     one row per model, the paper's columns (`table.py`)
    OUT/results.json            every number and setting; written last, so a folder
                                holding one holds a finished run
    OUT/<model>/<benchmark>/    each benchmark's own report, figures and numbers
    OUT/<model>/features/       the embeddings, kept across runs: a killed or
                                repeated run embeds only what is missing
"""

import datetime
import importlib
import inspect
import pathlib
import sys

from catface_keras.evaluation.official.table import COLUMNS, write_json, write_tables
from catface_keras.evaluation.run import RESULTS_FILE, check_output_folder, model_labels

# In the table's order; each module is imported when first needed.
BENCHMARK_MODULES = (
    "catface_keras.evaluation.official.verification_bins",
    "catface_keras.evaluation.official.ijb",
    "catface_keras.evaluation.official.tinyface",
    "catface_keras.evaluation.official.scface",
)
# Every name a benchmark may have, for checking --only before looking at the data.
KNOWN_BENCHMARKS = ("lfw", "cfp_fp", "cplfw", "agedb_30", "calfw", "cfp_ff", "vgg2_fp",
                    "ijbb", "ijbc", "tinyface", "scface")


def benchmark_modules():
    """The importable benchmark modules, in table order."""
    modules = []
    for name in BENCHMARK_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            if error.name != name:  # the module is there but one of its imports is not
                raise
    return modules


def find_benchmarks(root, only=None):
    """`[(name, module), ...]` of the benchmarks under `root`, in table order.

    Args:
        root: the benchmark root folder.
        only: names to keep (None: all found); a name not found is an error.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"--root {root} is not a directory")
    found = [(name, module) for module in benchmark_modules() for name in module.find(root)]
    if only is not None:
        names = [name for name, _ in found]
        missing = [name for name in only if name not in names]
        if missing:
            raise ValueError(f"--only {','.join(only)}: {', '.join(missing)} not found in "
                             f"{root} (found: {', '.join(names) or 'nothing'}); see the README, "
                             "'Comparing with published numbers', for the layouts")
        found = [(name, module) for name, module in found if name in only]
    if not found:
        raise ValueError(f"--root {root} holds none of the benchmark layouts (lfw.bin, ..., "
                         "IJB-B/C meta files, TinyFace Testing_Set, SCface folders); see the "
                         "README, 'Comparing with published numbers'")
    return found


def parse_only(text):
    """`--only lfw,ijbc` -> `("lfw", "ijbc")`, checked against `KNOWN_BENCHMARKS`."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in KNOWN_BENCHMARKS]
    if unknown or not names:
        raise ValueError(f"--only must list some of {', '.join(KNOWN_BENCHMARKS)}. "
                         f"Received: --only {text}")
    return names


def _options_for(function, options):
    """The options `function` accepts (all of them when it takes `**kwargs`)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(options)
    names = {p.name for p in parameters}
    return {key: value for key, value in options.items() if key in names}


def check_benchmarks(benchmarks, root, options):
    """Runs each module's `check` (its lists and meta files) before any model is loaded."""
    for name, module in benchmarks:
        check = getattr(module, "check", None)
        if check is not None:
            check(name, root, **_options_for(check, options))


def load_benchmark_model(path):
    """The one place `catface benchmark` loads a model (an imported iResNet included)."""
    from catface_keras.models.loading import load_model

    return load_model(path, allow_embedder=True)


def _at_precision(model, precision):
    """`(network, precision)`: `model` computing at `precision`, and that precision resolved."""
    from catface_keras.models.inference_precision import model_at_precision, resolve_precision

    precision = resolve_precision(precision)
    return model_at_precision(model, precision), precision


def _folder_name(label):
    return label.replace("/", "_")


def run_benchmarks(model_paths, root, out, only=None, overwrite=False, batch_size=64,
                   flip=True, norm_score=True, detector_score=True, scface_test_subjects=None,
                   precision="float32", load_model=load_benchmark_model, chunk_size=None,
                   stream=None):
    """Runs every benchmark found under `root` for each model; writes the output folder.

    Args:
        model_paths: the `.keras` files.
        root: the benchmark root.
        out: the output folder (see the module docstring).
        only: benchmark names to run (default: every one found).
        overwrite: replace an earlier run's `results.json` and reports.
        batch_size: images per model call.
        flip, norm_score, detector_score: test-time settings (IJB: insightface's
            published setting when all True; the others use `flip` only).
        scface_test_subjects: the SCface test-subject list file, or None (all).
        precision: what the models compute in (`catface evaluate --precision`);
            away from float32 the first images' cosine to float32 is printed and
            recorded per model.
        load_model: `path -> model` at float32.
        chunk_size: images embedded and saved together (default: the store's).

    Returns:
        The dict written to `results.json`.
    """
    from catface_keras.evaluation.official.feature_store import (
        DEFAULT_CHUNK_SIZE,
        FeatureExtractor,
        model_fingerprint,
    )

    stream = stream if stream is not None else sys.stdout
    out, root = pathlib.Path(out), pathlib.Path(root)
    check_output_folder(out, overwrite)
    options = {"flip": flip, "norm_score": norm_score, "detector_score": detector_score,
               "batch_size": batch_size, "scface_test_subjects": scface_test_subjects}
    benchmarks = find_benchmarks(root, only)
    check_benchmarks(benchmarks, root, options)
    # TensorFlow loads from here on, once the lists and meta files have been checked.
    from catface_keras.models.inference_precision import precision_record

    labels = model_labels(model_paths)
    out.mkdir(parents=True, exist_ok=True)
    models, cells_by_model, notes = [], {}, []
    for label, path in zip(labels, model_paths):
        model = load_model(path)
        network, resolved = _at_precision(model, precision)
        folder = out / _folder_name(label)
        extractor = FeatureExtractor(network, folder / "features", model_fingerprint(path),
                                     batch_size, chunk_size or DEFAULT_CHUNK_SIZE, stream,
                                     precision=resolved,
                                     reference=None if resolved == "float32" else model)
        results, reports = {}, {}
        for name, module in benchmarks:
            print(f"catface benchmark: {label}: {name}", file=stream, flush=True)
            report_dir = folder / name
            report_dir.mkdir(parents=True, exist_ok=True)
            run_options = dict(options, label=label)
            results[name] = module.run(name, root, extractor, report_dir,
                                       **_options_for(module.run, run_options))
            reports[name] = str(report_dir)
        cells = {key: value for result in results.values() for key, value in result.items()}
        cells_by_model[label] = cells
        models.append({"label": label, "path": str(path), "image_size": int(model.image_size),
                       "cells": {key: cells.get(key) for key, _ in COLUMNS},
                       "precision": precision_record(resolved, extractor.agreement),
                       "results": results, "reports": reports,
                       "features": str(folder / "features")})
    split = next((cells.get("scface_split") for cells in cells_by_model.values()
                  if cells.get("scface_split")), None)
    if split:
        notes.append(f"SCFace subjects: {split}.")
    if not flip:
        notes.append("Embeddings without the flip test (--no-flip).")
    if not (norm_score and detector_score):
        notes.append(f"IJB test mode: norm score {'on' if norm_score else 'off'}, detector "
                     f"score {'on' if detector_score else 'off'}.")
    write_tables(out, cells_by_model, notes)
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "root": str(root),
        "benchmarks": [name for name, _ in benchmarks],
        "settings": {**options, "scface_test_subjects": None if scface_test_subjects is None
                     else str(scface_test_subjects)},
        "columns": [{"key": key, "header": header} for key, header in COLUMNS],
        "models": models,
        "notes": notes,
    }
    write_json(out / RESULTS_FILE, report)
    return report
