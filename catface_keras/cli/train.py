"""`catface train --config FILE`: a training run described by a YAML config."""

import pathlib
import sys
import time

from catface_keras.config import ConfigError, load_config


def register(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train from a YAML config (see training/configs/)",
        description="Train the stage-1 model from a YAML config. Started again with the "
        "same --out after an interruption, it resumes from the last finished epoch.",
    )
    parser.add_argument("--config", required=True, type=pathlib.Path, help="YAML config file")
    parser.add_argument(
        "--out", type=pathlib.Path, default=None, help="output directory (default: runs/<config name>)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    parser.set_defaults(run=run)


def run(args):
    try:
        config = load_config(args.config)
        if args.epochs is not None:
            config = config.replace("train", epochs=args.epochs)
    except ConfigError as error:
        print(f"catface train: error: {error}", file=sys.stderr)
        return 2
    out = args.out or pathlib.Path("runs", args.config.stem)
    return train_and_report(config, out, args.overwrite, "catface train")


def train_and_report(config, out, overwrite, program):
    """Runs stage 1 into `out`, prints the metrics table; returns the exit code."""
    # Imported here so that argument and config errors come back without
    # waiting for TensorFlow to load.
    from catface_keras.evaluation.report import format_stage_table
    from catface_keras.trainer import OutputDirectoryError, TrainingDivergedError, run_stage1

    started = time.monotonic()
    try:
        _, metrics = run_stage1(config, out, overwrite=overwrite)
    except (OutputDirectoryError, TrainingDivergedError, ConfigError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print()
    print(format_stage_table(metrics))
    print(f"\nModel: {pathlib.Path(out, 'stage1.keras')}  Metrics: {pathlib.Path(out, 'metrics.json')}")
    print(f"Wall time: {time.monotonic() - started:.0f} s")
    return 0
