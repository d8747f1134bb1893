"""`catface demo`: train and evaluate both CATFace stages on the built-in synthetic faces."""

import sys

from catface_keras.cli.arguments import output_directory
from catface_keras.cli.train import train_and_report
from catface_keras.config import ConfigError, ExperimentConfig


def register(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="train and evaluate on the built-in synthetic faces",
        description="Train CATFace on procedurally drawn faces (synthetic identities with "
        "soft-biometric attributes): stage 1, the multi-branch network with self-attention "
        "distillation, then stage 2, the CATF fusion. Evaluates both on held-out identities "
        "and saves the models and metrics.",
    )
    parser.add_argument("--out", type=output_directory, default="runs/demo",
                        help="output directory (default: runs/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of each stage")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    parser.set_defaults(run=run)


def run(args):
    config = ExperimentConfig()
    if args.epochs is not None:
        try:
            config = config.replace("train", epochs=args.epochs)
            config = config.replace("stage2", epochs=args.epochs)
        except ConfigError as error:
            print(f"catface demo: error: {error}", file=sys.stderr)
            return 2
    return train_and_report(config, args.out, args.overwrite, "catface demo", stages=(1, 2))
