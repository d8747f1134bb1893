"""`catface demo`: train and evaluate stage 1 on the built-in synthetic faces."""

import pathlib
import sys

from catface_keras.cli.train import train_and_report
from catface_keras.config import ConfigError, ExperimentConfig


def register(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="train and evaluate on the built-in synthetic faces",
        description="Train the stage-1 CATFace model on procedurally drawn faces (synthetic "
        "identities with soft-biometric attributes), evaluate it on held-out identities, "
        "and save the model and metrics.",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/demo"),
                        help="output directory (default: runs/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    parser.set_defaults(run=run)


def run(args):
    config = ExperimentConfig()
    if args.epochs is not None:
        try:
            config = config.replace("train", epochs=args.epochs)
        except ConfigError as error:
            print(f"catface demo: error: {error}", file=sys.stderr)
            return 2
    return train_and_report(config, args.out, args.overwrite, "catface demo")
