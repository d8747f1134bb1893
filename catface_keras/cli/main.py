"""The `catface` command: one sub-command per module in this package."""

import argparse
import importlib
import sys

# Sub-command name -> module exposing `register(subparsers)`. These modules keep
# TensorFlow out of their top-level imports, so `catface --help` and argument or
# config errors come back without loading it.
SUBCOMMANDS = {
    "ablate": "catface_keras.cli.ablate",
    "align": "catface_keras.cli.align",
    "benchmark": "catface_keras.cli.benchmark",
    "data": "catface_keras.cli.data",
    "degrade": "catface_keras.cli.degrade",
    "demo": "catface_keras.cli.demo",
    "embed": "catface_keras.cli.embed",
    "evaluate": "catface_keras.cli.evaluate",
    "export": "catface_keras.cli.export",
    "import-weights": "catface_keras.cli.import_weights",
    "inspect": "catface_keras.cli.inspect",
    "train": "catface_keras.cli.train",
    "verify": "catface_keras.cli.verify",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="catface",
        description="CATFace low-quality face recognition (Keras 3).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
