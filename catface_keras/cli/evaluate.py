"""`catface evaluate`: the paper's evaluation protocols on saved models."""

import pathlib
import sys

from catface_keras.choices import EVALUATION_CONDITIONS as CONDITIONS
from catface_keras.choices import EVALUATION_PROTOCOLS as PROTOCOLS
from catface_keras.choices import THRESHOLD_SEARCHES
from catface_keras.cli.arguments import (
    add_pairs_file_arguments,
    add_precision_argument,
    checked_pairs_file,
    output_directory,
)
from catface_keras.cli.errors import report_os_error
from catface_keras.config import load_config
from catface_keras.data.registry import (
    SYNTHETIC_DATA,
    describe_evaluation_data,
    evaluation_source,
    face_source,
)
from catface_keras.degradation_config import DegradationConfig
from catface_keras.evaluation import protocol_data
from catface_keras.evaluation.run import check_output_folder, evaluate_models

PROTOCOL_CHOICES = (*PROTOCOLS, "all")
# Published numbers are float32's; bfloat16 moved the 10-fold accuracy of a 3000-pair set by
# 0.0007 (README, "Inference precision"), visible in the fourth decimal.
DEFAULT_PRECISION = "float32"


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate saved models by the paper's protocols, clean, degraded and mixed",
        description="Evaluate one or more saved models (.keras) by the paper's protocols: 1:1 "
        "verification (10-fold accuracy as insightface computes it, TAR at FAR 1e-6 .. 1e-1, "
        "AUC, EER), template verification (IJB-B/C style), identification (rank-1/5/10/20 "
        "with distractors; rank-1 per distance group) and soft-biometric attribute accuracy, "
        "each on the data as given (clean), on a copy degraded at the model's input size "
        "(degraded) and with one side clean, the other degraded (mixed). The same code scores "
        "the held-out faces of `catface train`. Writes results.json, report.md and ROC and "
        "score-histogram PNGs to --out. Give --model twice to compare two models in one report "
        "and one figure.",
    )
    parser.add_argument("--model", required=True, action="append", type=pathlib.Path,
                        metavar="PATH", help="a saved model (.keras); repeat to compare models")
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="all",
                        help="which protocol (default: all that the data defines)")
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="'synthetic' (built-in faces of unseen identities), or "
                        f"{describe_evaluation_data()}; a folder holds one sub-folder of images "
                        "per identity (and optionally _distractors/), or the images "
                        "--pairs-file names")
    parser.add_argument("--pairs-file", type=pathlib.Path, default=None, metavar="FILE",
                        help="with a folder: the verification pairs, an LFW pairs.txt ('name n1 "
                        "n2' and 'name1 n1 name2 n2' lines, optional 'folds pairs' header) or "
                        "'path1 path2 label [fold]' lines with paths relative to --data")
    parser.add_argument("--out", required=True, type=output_directory, metavar="DIR",
                        help="results folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of an earlier run in --out")
    parser.add_argument("--config", type=pathlib.Path, default=None, metavar="YAML",
                        help="a training config (e.g. a run's config.yaml): its evaluation "
                        "section sets the defaults of --seed, --pairs and --batch-size, and "
                        "its degrade section (when present) the degradations")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the pair sampling and of the degraded copy (default: 1, "
                        "as the trainer's evaluation)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per model call (default: 64)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), metavar="LIST",
                        help="comma-separated conditions among clean, degraded, mixed "
                        "(default: all three)")
    parser.add_argument("--threshold-search", choices=THRESHOLD_SEARCHES, default="insightface",
                        help="10-fold accuracy thresholds: 'insightface' (squared-L2 grid "
                        "0, 0.01, ..., 3.99, insightface's evaluate(); default) or 'exact' "
                        "(every midpoint between observed distances)")
    parser.add_argument("--attributes-csv", type=pathlib.Path, default=None, metavar="CSV",
                        help="with an image folder: attribute labels, rows 'path,Male,Bald,...' "
                        "(paths relative to the folder; 1, 0 or -1 for unknown)")
    parser.add_argument("--calibration-split", type=float, default=None, metavar="SHARE",
                        help="calibrate the thresholds `catface verify` reads on this seeded "
                        "share of the clean verification pairs (e.g. 0.3) and record the FAR "
                        "and TAR they give on the rest (default: on all of them)")
    add_pairs_file_arguments(
        parser, "--calibration-pairs", "--calibration-root",
        "calibrate the thresholds `catface verify` reads on these pairs (e.g. other people's "
        "faces than the evaluated ones) and record the FAR and TAR they give on the evaluated "
        "clean pairs (default: on the evaluated pairs)")
    parser.add_argument("--pairs", type=int, default=None,
                        help="verification pairs of each kind drawn from labelled images "
                        "(default: 3000)")
    add_precision_argument(parser, DEFAULT_PRECISION, "the models compute in")
    group = parser.add_argument_group("synthetic data (--data synthetic)")
    group.add_argument("--identities", type=int, default=200, help="people (default: 200)")
    group.add_argument("--images-per-identity", type=int, default=8,
                       help="images of each person (default: 8)")
    group.add_argument("--distractors", type=int, default=200,
                       help="distractor people, one image each (default: 200)")
    parser.set_defaults(run=run)


def _settings(args):
    """Seed, pairs, batch size and degradation config from --config and the flags."""
    seed, pairs, batch_size, flip, experiment = 1, 3000, 64, True, None
    if args.config is not None:
        experiment = load_config(args.config)
        evaluation = experiment.evaluation
        seed, pairs, batch_size, flip = (evaluation.seed, evaluation.num_pairs,
                                         evaluation.batch_size, evaluation.flip)
    args.seed = seed if args.seed is None else args.seed
    args.pairs = pairs if args.pairs is None else args.pairs
    args.batch_size = batch_size if args.batch_size is None else args.batch_size
    args.flip = flip
    args.experiment = experiment


def _check_arguments(args):
    for path in args.model:
        if not path.is_file():
            raise ValueError(f"--model {path} is not a file")
    if args.data != SYNTHETIC_DATA and not pathlib.Path(args.data).exists():
        raise ValueError(
            f"--data must be '{SYNTHETIC_DATA}', {describe_evaluation_data()}; {args.data} "
            "does not exist"
        )
    evaluation_source(args.data)  # a path that no source reads stops here
    if args.pairs_file is not None:
        if not pathlib.Path(args.data).is_dir():
            raise ValueError(f"--pairs-file needs --data to be the folder its paths are "
                             f"relative to. Received: --data {args.data}")
        if not args.pairs_file.is_file():
            raise ValueError(f"--pairs-file {args.pairs_file} is not a file")
    if args.attributes_csv is not None and not args.attributes_csv.is_file():
        raise ValueError(f"--attributes-csv {args.attributes_csv} is not a file")
    if args.config is not None and not args.config.is_file():
        raise ValueError(f"--config {args.config} is not a file")
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise ValueError(f"--conditions must list some of {', '.join(CONDITIONS)}. "
                         f"Received: --conditions {args.conditions}")
    args.conditions = tuple(c for c in CONDITIONS if c in conditions)
    _settings(args)
    for name in ("seed", "distractors"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    for name in ("batch_size", "pairs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.calibration_split is not None and not 0 < args.calibration_split < 1:
        raise ValueError(f"--calibration-split must be in (0, 1), got {args.calibration_split}")
    args.calibration = checked_pairs_file(args.calibration_pairs, args.calibration_root,
                                          "--calibration-pairs", "--calibration-root")
    if args.calibration is not None and args.calibration_split is not None:
        raise ValueError("--calibration-pairs and --calibration-split exclude each other: "
                         "the thresholds come from one set of pairs")
    if args.identities < 2 or args.images_per_identity < 2:
        raise ValueError("--identities and --images-per-identity must be >= 2, got "
                         f"{args.identities} and {args.images_per_identity}")
    check_output_folder(args.out, args.overwrite)


def load_models(paths):
    """`(models, class_centres)`: `load_model_and_class_centres` for each path (imported
    iResNets included: they embed, and have no attribute results)."""
    from catface_keras.models.loading import load_model_and_class_centres

    loaded = [load_model_and_class_centres(path, allow_embedder=True) for path in paths]
    return [model for model, _ in loaded], [centres for _, centres in loaded]


def at_precision(models, paths, precision, images, batch_size, program):
    """`(models, records)`: each model computing at `precision`, and its `precision_record`
    with, away from float32, its embeddings' cosine to float32 on the first batch of
    `images` (printed too)."""
    from catface_keras.data.resizing import resize_faces
    from catface_keras.models.inference_precision import (
        agreement_text,
        embedding_agreement,
        model_at_precision,
        precision_record,
        resolve_precision,
    )

    precision = resolve_precision(precision)
    converted, records = [], []
    for model, path in zip(models, paths):
        network = model_at_precision(model, precision)
        agreement = None
        if precision != "float32":
            first = resize_faces(images[:batch_size], int(model.image_size), None)
            agreement = embedding_agreement(model, network, first)
            print(f"{program}: {path} in {precision}: {agreement_text(agreement)}")
        converted.append(network)
        records.append(precision_record(precision, agreement))
    return converted, records


def load_data(args, image_size):
    """The `EvaluationData` that `--data` (and `--pairs-file`) name: the built-in faces, or
    what the face source `catface_keras.data.registry` finds for the path reads."""

    if args.data == SYNTHETIC_DATA:
        return protocol_data.synthetic_evaluation_data(
            args.identities, args.images_per_identity, args.distractors, image_size,
            num_pairs=args.pairs, pair_seed=args.seed,
        )
    faces = face_source(evaluation_source(args.data)).evaluation_faces(
        pathlib.Path(args.data), image_size, args.attributes_csv, args.pairs_file
    )
    return protocol_data.evaluation_data(faces, args.pairs, args.seed,
                                         source=str(pathlib.Path(args.data)))


def _degradation(experiment):
    return experiment.degrade if experiment is not None else DegradationConfig()


def run(args):
    program = "catface evaluate"
    try:
        _check_arguments(args)
    except ValueError as error:  # ConfigError included
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    from catface_keras.data.decoding import set_max_image_pixels

    if args.experiment is not None:
        set_max_image_pixels(args.experiment.data.max_image_pixels)
    try:
        models, class_centres = load_models(args.model)
        data = load_data(args, int(models[0].image_size))
        calibration_data = None
        if args.calibration is not None:
            calibration_data = protocol_data.pairs_file_data(*args.calibration,
                                                             int(models[0].image_size))
        models, precisions = at_precision(models, args.model, args.precision, data.images,
                                          args.batch_size, program)
        available = data.protocols()
        if args.protocol == "all":
            protocols = available
        elif args.protocol in available:
            protocols = (args.protocol,)
        else:
            raise ValueError(f"--data {args.data} defines {', '.join(available)}, "
                             f"not {args.protocol}")
        protocols = tuple(name for name in PROTOCOLS if name in protocols)
        report = evaluate_models(
            models, args.model, data, protocols, args.out, args.seed, args.batch_size,
            args.overwrite, data_description=args.data,
            degradation=_degradation(args.experiment), conditions=args.conditions,
            threshold_search=args.threshold_search, flip=args.flip,
            class_centres=class_centres, precisions=precisions,
            calibration_split=args.calibration_split, calibration_data=calibration_data,
        )
    except ValueError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk while writing, or a file that cannot be read
        return report_os_error(program, error, args.out,
                               f"earlier results in {args.out} are unchanged")
    print(f"{program}: {', '.join(protocols)} on {args.data}: wrote "
          f"{args.out / 'results.json'}, {args.out / 'report.md'} and "
          f"{len(report['plots'])} figures")
    return 0
