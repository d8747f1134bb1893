"""`catface evaluate`: the paper's evaluation protocols on saved models."""

import pathlib
import sys

PROTOCOL_CHOICES = ("verification", "templates", "identification", "attributes", "all")


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate saved models by the paper's protocols, clean and distorted",
        description="Evaluate one or more saved models (.keras) by the paper's protocols: 1:1 "
        "verification (10-fold accuracy, TAR at FAR 1e-6 .. 1e-1, AUC, EER), template "
        "verification (IJB-B/C style), identification (rank-1/5/10/20 with distractors; rank-1 "
        "per distance group) and soft-biometric attribute accuracy, each on the data as given "
        "and on a degraded copy. Writes results.json, report.md and ROC and score-histogram "
        "PNGs to --out. Give --model twice to compare two models in one report and one "
        "figure.",
    )
    parser.add_argument("--model", required=True, action="append", type=pathlib.Path,
                        metavar="PATH", help="a saved model (.keras); repeat to compare models")
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="all",
                        help="which protocol (default: all that the data defines)")
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="'synthetic' (built-in faces of unseen identities), an insightface "
                        "verification .bin file, or a folder with one sub-folder of images per "
                        "identity (and optionally _distractors/)")
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR",
                        help="results folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of an earlier run in --out")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the distorted copy (default: 1, as the trainer's evaluation)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images per model call (default: 64)")
    parser.add_argument("--attributes-csv", type=pathlib.Path, default=None, metavar="CSV",
                        help="with an image folder: attribute labels, rows 'path,Male,Bald,...' "
                        "(paths relative to the folder; 1, 0 or -1 for unknown)")
    parser.add_argument("--pairs", type=int, default=3000,
                        help="verification pairs of each kind drawn from labelled images "
                        "(default: 3000)")
    group = parser.add_argument_group("synthetic data (--data synthetic)")
    group.add_argument("--identities", type=int, default=200, help="people (default: 200)")
    group.add_argument("--images-per-identity", type=int, default=8,
                       help="images of each person (default: 8)")
    group.add_argument("--distractors", type=int, default=200,
                       help="distractor people, one image each (default: 200)")
    parser.set_defaults(run=run)


def _check_arguments(args):
    from catface_keras.evaluation.run import check_output_folder

    for path in args.model:
        if not path.is_file():
            raise ValueError(f"--model {path} is not a file")
    if args.data != "synthetic" and not pathlib.Path(args.data).exists():
        raise ValueError(
            f"--data must be 'synthetic', a .bin file or a folder; {args.data} does not exist"
        )
    if args.attributes_csv is not None and not args.attributes_csv.is_file():
        raise ValueError(f"--attributes-csv {args.attributes_csv} is not a file")
    for name in ("seed", "distractors"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    for name in ("batch_size", "pairs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.identities < 2 or args.images_per_identity < 2:
        raise ValueError("--identities and --images-per-identity must be >= 2, got "
                         f"{args.identities} and {args.images_per_identity}")
    check_output_folder(args.out, args.overwrite)


def load_models(paths):
    """`keras.saving.load_model` for each path, with the CATFace classes registered."""
    import keras

    # Importing the package registers the CATFace model classes; stage 1 is
    # named as well, so that its files load whatever the package imports.
    import catface_keras.models  # noqa: F401
    import catface_keras.models.multibranch  # noqa: F401

    return [keras.saving.load_model(path) for path in paths]


def load_data(args, image_size):
    """The `EvaluationData` that `--data` names."""
    from catface_keras.evaluation import protocol_data

    if args.data == "synthetic":
        return protocol_data.synthetic_evaluation_data(
            args.identities, args.images_per_identity, args.distractors, image_size,
            num_pairs=args.pairs,
        )
    path = pathlib.Path(args.data)
    if path.is_dir():
        return protocol_data.identity_folder_data(path, image_size, args.attributes_csv,
                                                  num_pairs=args.pairs)
    if path.suffix == ".bin":
        return protocol_data.verification_bin_data(path)
    raise ValueError(f"--data {path}: expected 'synthetic', a .bin file or a folder")


def run(args):
    program = "catface evaluate"
    try:
        _check_arguments(args)
    except ValueError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    from catface_keras.evaluation.protocols import PROTOCOLS
    from catface_keras.evaluation.run import evaluate_models

    try:
        models = load_models(args.model)
        data = load_data(args, int(models[0].image_size))
        available = data.protocols()
        if args.protocol == "all":
            protocols = available
        elif args.protocol in available:
            protocols = (args.protocol,)
        else:
            raise ValueError(f"--data {args.data} defines {', '.join(available)}, "
                             f"not {args.protocol}")
        protocols = tuple(name for name in PROTOCOLS if name in protocols)
        report = evaluate_models(models, args.model, data, protocols, args.out, args.seed,
                                 args.batch_size, args.overwrite, data_description=args.data)
    except ValueError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print(f"{program}: {', '.join(protocols)} on {args.data}: wrote "
          f"{args.out / 'results.json'}, {args.out / 'report.md'} and "
          f"{len(report['plots'])} figures")
    return 0
