"""CATFace on real faces: stage 1 and stage 2 trained on a CelebA-format folder's train
identities, evaluated on its test identities, one report.

    python benchmarks/real_faces.py --celeba ../shared/celeba_sample --out runs/real_faces
    python benchmarks/real_faces.py --celeba DIR --out runs/real_quick --quick

Trains `training/configs/celeba_small.yaml` (IR-tiny at 64 px: stage 1 for 16 epochs,
CATF stage 2 for 12, chosen to finish within 30 minutes on 2 CPU cores with the
10,000-image sample) with `data.path` set to `--celeba`, through the trainer `catface
train` runs; then evaluates both models on the test identities through the one
evaluation path (`catface_keras.evaluation.run.evaluate_models`, as `catface evaluate`;
its report.md and results.json land in OUT/evaluation), and writes OUT/report.md and
OUT/report.json:

- verification, clean, degraded and mixed: 10-fold accuracy, AUC, TAR at FAR 1e-2 and
  1e-3, beside a raw-pixel floor (cosine of the mean-removed pixels of the same images,
  on the same pairs): what a model must beat to have learnt anything;
- attributes per attribute: accuracy beside the constant predictor's (the majority
  class's base rate) and balanced accuracy with its 95 % interval;
- OUT/degradation_grid.png: the degradation families drawn on real test faces;
- OUT/real_low_quality.png: the set's own low-quality photos (CelebA's `Blurry` label)
  above sharp test faces degraded by the training mix at the model's input size, to
  compare the degradation strengths with real ones by eye;
- wall time and the process's peak resident memory.

`--validation FRACTION` sets the test identities aside and holds out a seeded FRACTION of
the train identities with two or more images instead (a CelebA-format copy in
OUT/validation_data, partition 2 marking them): the split on which settings are chosen, so
that the test identities only ever measure. The report then says "validation identities".

`--quick` keeps the first few hundred images (whole identities, a CelebA-format copy
in OUT/quick_data with links to the images) and trains one epoch per stage: a check
that the pipeline runs, not a measurement. The folder must hold CelebA's files
(`catface_keras.data.celeba`); a test builds a tiny one.
"""

import argparse
import json
import os
import pathlib
import resource
import sys
import time

import numpy as np

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPOSITORY / "training" / "configs" / "celeba_small.yaml"
QUICK_TRAIN_IMAGES = 300
QUICK_TEST_IMAGES = 120
QUICK_PAIRS = 200
GRID_FACES = 3
COMPARISON_FACES = 8
REPORT_FARS = (1e-2, 1e-3)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--celeba", required=True, type=pathlib.Path,
                        help="CelebA-format root (img_align_celeba/ and the three lists)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/real_faces"),
                        help="output folder (default: runs/real_faces)")
    parser.add_argument("--config", type=pathlib.Path, default=DEFAULT_CONFIG,
                        help="training config (default: training/configs/celeba_small.yaml); "
                        "its data.path is replaced by --celeba")
    parser.add_argument("--quick", action="store_true",
                        help=f"first {QUICK_TRAIN_IMAGES} train and {QUICK_TEST_IMAGES} test "
                        "images, one epoch per stage: a smoke run")
    parser.add_argument("--validation", type=float, default=None, metavar="FRACTION",
                        help="leave the test identities out and hold out this fraction of the "
                        "train identities (those with 2+ images) instead, e.g. 0.2")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in --out")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="train nothing: evaluate the models already in OUT/run "
                        "(stage1.keras, stage2.keras) and write the report")
    args = parser.parse_args(argv)
    if args.validation is not None and not 0 < args.validation < 1:
        parser.error(f"--validation must be a fraction in (0, 1). Received: {args.validation}")
    if not args.celeba.is_dir():
        parser.error(f"--celeba must be a CelebA-format folder. Received: --celeba={args.celeba}")
    if args.evaluate_only:
        missing = [name for name in ("stage1.keras", "stage2.keras")
                   if not (args.out / "run" / name).is_file()]
        if missing:
            parser.error(f"--evaluate-only needs the trained models in {args.out / 'run'}; "
                         f"missing: {', '.join(missing)}")
    if (args.out / "report.json").exists() and not (args.overwrite or args.evaluate_only):
        parser.error(f"{args.out / 'report.json'} exists; pass --overwrite to replace it")
    return args


def quick_subset(celeba, root, train_images, test_images):
    """A CelebA-format copy of the first whole identities: `train_images` train and
    `test_images` test images at most, files linked, lists rewritten.

    Returns:
        `root`.
    """
    from catface_keras.data.celeba import PARTITIONS, read_celeba

    table = read_celeba(celeba, attribute_names=())
    keep = np.zeros(len(table.paths), bool)
    for code, budget in ((PARTITIONS.index("train"), train_images),
                         (PARTITIONS.index("test"), test_images)):
        taken = 0
        for identity in dict.fromkeys(table.identities[table.partitions == code]):
            members = (table.identities == identity) & (table.partitions == code)
            if taken + members.sum() > budget:
                continue
            keep |= members
            taken += int(members.sum())
    return _celeba_copy(celeba, root, np.asarray(table.paths)[keep])


def validation_split(celeba, root, fraction, seed=0):
    """A CelebA-format copy of `celeba` without its test identities, a seeded `fraction` of
    its train identities with two or more images (verification needs pairs) marked test
    (partition 2) instead; files linked, lists rewritten.

    Returns:
        `root`.
    """
    from catface_keras.data.celeba import PARTITIONS, read_celeba

    table = read_celeba(celeba, attribute_names=())
    train = table.partitions == PARTITIONS.index("train")
    identities, counts = np.unique(table.identities[train], return_counts=True)
    candidates = identities[counts >= 2]
    rng = np.random.default_rng(seed)
    held = rng.choice(candidates, int(round(fraction * len(candidates))), replace=False)
    held_paths = np.asarray(table.paths)[train & np.isin(table.identities, held)]
    validation = {pathlib.Path(path).name for path in held_paths}
    return _celeba_copy(celeba, root, np.asarray(table.paths)[train],
                        lambda name: 2 if name in validation else 0)


def _celeba_copy(celeba, root, paths, partition=None):
    """A CelebA-format copy of `celeba` in `root` holding `paths` only: the images linked,
    the identity and attribute lists cut to them, the partition list cut too or, with
    `partition(file name) -> code`, rewritten. Returns `root`."""
    from catface_keras.data.celeba import IMAGE_DIRECTORY

    names = [pathlib.Path(path).name for path in paths]
    kept = set(names)
    images = pathlib.Path(root, IMAGE_DIRECTORY)
    images.mkdir(parents=True, exist_ok=True)
    for path, name in zip(paths, names):
        link = images / name
        if not link.exists():
            link.symlink_to(pathlib.Path(path).resolve())

    def kept_lines(file_name):
        return [line for line in _find_lines(celeba, file_name)
                if line.split()[:1] and line.split()[0] in kept]

    _write(root / "identity_CelebA.txt", kept_lines("identity_CelebA.txt"))
    _write(root / "list_eval_partition.txt",
           kept_lines("list_eval_partition.txt") if partition is None
           else [f"{name} {partition(name)}" for name in names])
    lines = _find_lines(celeba, "list_attr_celeba.txt")
    rows = [line for line in lines[2:] if line.split()[:1] and line.split()[0] in kept]
    _write(root / "list_attr_celeba.txt", [str(len(rows)), lines[1]] + rows)
    return root


def low_quality_comparison(celeba, sharp_paths, image_size, degradation, seed,
                           faces=COMPARISON_FACES, cell_size=112):
    """A labelled grid: `faces` of the set's photos labelled `Blurry` (its real low-quality
    faces) above `faces` of `sharp_paths` degraded by `degradation` at `image_size`, all
    shown at `cell_size`. Returns `(grid uint8 RGB, number of Blurry photos in the set)`."""
    import tensorflow as tf

    from catface_keras import degrade
    from catface_keras.data.celeba import read_celeba
    from catface_keras.data.image_files import load_face_image
    from catface_keras.visualization.grids import labelled_grid

    table = read_celeba(celeba, attribute_names=("Blurry",))
    blurry = np.asarray(table.paths)[table.attributes[:, 0] == 1]
    # A blank cell where the set labels no photo Blurry.
    real = [load_face_image(path, cell_size) for path in blurry[:faces]] or [
        np.full((cell_size, cell_size, 3), 255, np.uint8)]
    sharp = np.stack([load_face_image(path, image_size) for path in sharp_paths[:faces]])
    degraded = np.asarray(degrade.degrade(tf.constant(sharp), tf.constant([seed, 0], tf.int64),
                                          degradation))
    shown = [np.asarray(tf.image.resize(image, [cell_size, cell_size], "bilinear"), np.uint8)
             for image in degraded]
    grid = labelled_grid(
        [real, shown],
        ["real: CelebA\nBlurry", f"drawn: the\ntraining mix\nat {image_size} px"],
        [str(index + 1) for index in range(faces)], cell_size,
    )
    return grid, len(blurry)


def _find_lines(celeba, name):
    from catface_keras.data.celeba import find_celeba_file

    return find_celeba_file(celeba, name).read_text().splitlines()


def _write(path, lines):
    from catface_keras.atomic_files import write_text_atomically

    write_text_atomically("\n".join(lines) + "\n", path)


def pixel_floor(images, pairs, image_size, degradation, seed, conditions):
    """Verification of raw pixels on `pairs`: each image resized to `image_size` (and
    degraded as the models' copy is), flattened, its mean removed; cosine scores."""
    from catface_keras.evaluation.protocols import CONDITION_SIDES, condition_images
    from catface_keras.evaluation.verification import verification_summary

    copies = condition_images(images, image_size, ("clean", "degraded"), degradation, seed)
    vectors = {}
    for side, faces in copies.items():
        flat = faces.reshape(len(faces), -1).astype(np.float32)
        vectors[side] = flat - flat.mean(axis=1, keepdims=True)
    results = {}
    for condition in conditions:
        first, second = (vectors[side] for side in CONDITION_SIDES[condition])
        results[condition], _ = verification_summary(
            first[pairs.first], second[pairs.second], pairs.same, REPORT_FARS, folds=pairs.folds)
    return results


def _cell(value, percent=True):
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def verification_table(rows, conditions):
    """Markdown: a row per (model, condition) with accuracy, AUC and TAR at `REPORT_FARS`."""
    from catface_keras.evaluation.roc import far_key

    header = ["Model", "Condition", "Acc. % (10-fold)", "AUC"] + [
        f"TAR@FAR={far:.0e} %".replace("e-0", "e-") for far in REPORT_FARS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, by_condition in rows.items():
        for condition in conditions:
            metrics = by_condition[condition]
            cells = [label, condition,
                     f"{_cell(metrics['accuracy'])} ± {_cell(metrics['accuracy_std'])}",
                     _cell(metrics["auc"], percent=False)]
            cells += [_cell(metrics.get(far_key(far))) for far in REPORT_FARS]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def attribute_table(results, labels, conditions):
    """Markdown: a row per attribute, the constant predictor's accuracy (the majority
    class's base rate), then accuracy and balanced accuracy [95 % CI] per model and
    condition."""
    from catface_keras.evaluation.report import attribute_scores_of, format_balanced

    columns = [(label, condition) for label in labels for condition in conditions]
    header = ["Attribute", "positives", "constant predictor acc."] + [
        f"{label} {condition} {title}" for label, condition in columns
        for title in ("acc.", "bal. acc. [95 % CI]")]
    first = results[labels[0]]["attributes"][conditions[0]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in first["accuracy"]:
        scores = first.get("per_attribute", {}).get(name, {})
        cells = [name, f"{scores.get('num_positive')} / {scores.get('num_labelled')}",
                 _cell(scores.get("majority_rate"), percent=False)]
        for label, condition in columns:
            accuracy, _, balanced, interval = attribute_scores_of(
                results[label]["attributes"][condition], name)
            cells += [_cell(accuracy, percent=False), format_balanced(balanced, interval)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(out, record):
    """OUT/report.md and OUT/report.json from the benchmark's record."""
    from catface_keras.atomic_files import write_text_atomically

    conditions = record["conditions"]
    held = "test" if record.get("validation") is None else "validation"
    lines = [
        "# CATFace on real faces", "",
        f"Data: `{record['data']['path']}`: {record['data']['train_images']} train images of "
        f"{record['data']['train_identities']} identities; {held}: "
        f"{record['data']['test_images']} images of {record['data']['test_identities']} other "
        f"identities. Config: `{record['config']}` ({record['model']}). "
        + (f"**Validation split: the test identities are left out; {record['validation']:g} "
           "of the train identities with 2+ images are held out instead.** "
           if held == "validation" else "")
        + ("**--quick: a smoke run, not a measurement.**" if record["quick"] else "")
        + ("--evaluate-only: the models were trained before; the training time is not "
           "counted." if record.get("evaluate_only") else ""),
        "",
        f"Wall time {record['wall_seconds']:.0f} s (training {record['train_seconds']:.0f} s, "
        f"evaluation {record['evaluation_seconds']:.0f} s); peak resident memory "
        f"{record['peak_memory_mib']:.0f} MiB; {record['cpu_seconds']:.0f} CPU seconds "
        f"(all threads); {record['cpus']} CPUs visible, load average at the end "
        f"{record['load_average']}.", "",
        f"## Verification ({record['pairs']['genuine']} genuine, {record['pairs']['impostor']} "
        f"impostor pairs of {held} identities)", "",
        "Degraded: both images degraded at the model's input size (`catface_keras.degrade`, "
        "the training mix, fixed seed); mixed: first clean, second degraded. Raw pixels: "
        "cosine of mean-removed pixels at the same size, the floor a model must beat.", "",
    ]
    lines += verification_table(record["verification"], conditions)
    attribute_conditions = [c for c in conditions
                            if c in record["evaluation"]["stage1"]["attributes"]]
    lines += ["", f"## Attributes ({held} identities)", ""]
    lines += attribute_table(record["evaluation"], ["stage1", "stage2"], attribute_conditions)
    lines += ["", "Constant predictor: always the majority class (its accuracy is the "
              "majority's base rate). Balanced accuracy: mean of the true-positive and "
              "true-negative rates, 0.5 for any constant answer; 95 % interval: the mean of "
              "the per-class Wilson bounds (conservative).", "",
              "## Files", "",
              "- [evaluation/report.md](evaluation/report.md): `catface evaluate`'s report of "
              "both models (every FAR, EER, score histograms, ROC)",
              "- [degradation_grid.png](degradation_grid.png): the degradations on real test "
              "faces",
              "- [real_low_quality.png](real_low_quality.png): the set's own `Blurry` photos "
              f"({record['blurry_photos']} of them) above test faces degraded by the training "
              "mix",
              f"- models: `{record['models']['stage1']}`, `{record['models']['stage2']}`", ""]
    write_text_atomically("\n".join(lines), out / "report.md")
    write_text_atomically(json.dumps(record, indent=2) + "\n", out / "report.json")


def peak_memory_mib():
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPOSITORY))
    started = time.monotonic()
    from catface_keras.config import check_data_files, load_config

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    celeba = args.celeba
    config = load_config(args.config)
    if args.validation is not None:
        celeba = validation_split(celeba, out / "validation_data", args.validation)
    if args.quick:
        celeba = quick_subset(celeba, out / "quick_data", QUICK_TRAIN_IMAGES,
                              QUICK_TEST_IMAGES)
        config = config.replace("train", epochs=1, batch_size=16)
        config = config.replace("optimizer", lr_milestones=[])
        config = config.replace("stage2", epochs=1, lr_milestones=[])
        config = config.replace("evaluation", num_pairs=QUICK_PAIRS)
    config = config.replace("data", path=str(celeba.resolve()))
    check_data_files(config)

    from catface_keras.data.celeba import celeba_splits
    from catface_keras.data.image_files import load_face_image
    from catface_keras.evaluation.protocol_data import face_arrays_data
    from catface_keras.evaluation.run import evaluate_models
    from catface_keras.models.loading import load_model
    from catface_keras.run_directory import STAGE1, STAGE2
    from catface_keras.trainer import load_data, run_stages
    from catface_keras.visualization.degradation_grid import degradation_grid
    from catface_keras.visualization.grids import write_png

    run_dir = out / "run"
    if not args.evaluate_only:
        run_stages(config, run_dir, (1, 2), overwrite=args.overwrite, verbose=2)
    trained = time.monotonic()

    train_files, test_files = celeba_splits(config.data.path, config.model.attribute_names)
    _, heldout = load_data(config)
    data = face_arrays_data(heldout, config.evaluation.num_pairs, config.evaluation.seed,
                            source=str(args.celeba))
    paths = [run_dir / STAGE1.model_file, run_dir / STAGE2.model_file]
    models = [load_model(path) for path in paths]
    conditions = ("clean", "degraded", "mixed")
    evaluation = evaluate_models(
        models, paths, data, ("verification", "attributes"), out / "evaluation",
        seed=config.evaluation.seed, batch_size=config.evaluation.batch_size, overwrite=True,
        data_description=str(args.celeba), degradation=config.degrade, conditions=conditions,
        flip=config.evaluation.flip,
    )
    by_label = dict(zip(("stage1", "stage2"), evaluation["models"]))
    results = {name: evaluation["results"][model["label"]] for name, model in by_label.items()}
    floor = pixel_floor(data.images, data.verification, config.data.image_size,
                        config.degrade, config.evaluation.seed, conditions)
    faces = [load_face_image(path, 112) for path in test_files.paths[:GRID_FACES]]
    grid = np.concatenate([degradation_grid(face, config.evaluation.seed, config.degrade)
                           for face in faces], axis=0)
    write_png(out / "degradation_grid.png", grid)
    comparison, blurry_photos = low_quality_comparison(
        celeba, test_files.paths, config.data.image_size, config.degrade, config.evaluation.seed)
    write_png(out / "real_low_quality.png", comparison)
    finished = time.monotonic()
    same = np.asarray(data.verification.same, bool)
    record = {
        "quick": bool(args.quick),
        "validation": args.validation,
        "evaluate_only": bool(args.evaluate_only),
        "config": str(args.config),
        "model": f"{config.model.backbone} at {config.data.image_size} px, stage 1 "
                 f"{config.train.epochs} epochs, stage 2 {config.stage2.fusion} "
                 f"{config.stage2.epochs} epochs, batch {config.train.batch_size} pairs",
        "data": {"path": str(args.celeba), "train_images": len(train_files.paths),
                 "train_identities": int(train_files.num_classes),
                 "test_images": len(test_files.paths),
                 "test_identities": int(len(np.unique(test_files.identities)))},
        "pairs": {"genuine": int(same.sum()), "impostor": int((~same).sum())},
        "conditions": list(conditions),
        "verification": {"raw pixels": floor,
                         **{name: result["verification"] for name, result in results.items()}},
        "evaluation": results,
        "models": {"stage1": str(paths[0]), "stage2": str(paths[1])},
        "blurry_photos": blurry_photos,
        "wall_seconds": finished - started,
        "train_seconds": trained - started,
        "evaluation_seconds": finished - trained,
        "peak_memory_mib": peak_memory_mib(),
        # CPU time is what the run cost; wall time also counts other jobs on the machine.
        "cpu_seconds": sum(os.times()[:2]),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    from catface_keras.evaluation.run import json_safe

    write_report(out, json_safe(record))
    print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
