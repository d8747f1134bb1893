"""`catface train --config FILE`: a training run described by a YAML config."""

import argparse
import pathlib
import sys
import time

from catface_keras.atomic_files import check_keras_archive
from catface_keras.cli.arguments import check_input_file, output_directory
from catface_keras.config import FUSION_KINDS, ConfigError, check_data_files, load_config
from catface_keras.evaluation.report import format_stage_table

STAGES = {"1": (1,), "2": (2,), "all": (1, 2)}


def register(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train from a YAML config (see training/configs/)",
        description="Train CATFace from a YAML config: stage 1 (the multi-branch network), "
        "stage 2 (the fusion module on top of a stage-1 model), or both. Started again with "
        "the same --out after an interruption, a stage resumes from its last finished epoch.",
    )
    parser.add_argument("--config", required=True, type=pathlib.Path, help="YAML config file")
    parser.add_argument(
        "--out", type=output_directory, default=None,
        help="output directory (default: runs/<config name>)"
    )
    parser.add_argument(
        "--stage", choices=sorted(STAGES), default="1",
        help="1: multi-branch network; 2: fusion on top of --init; all: both (default: 1)",
    )
    parser.add_argument(
        "--init", type=pathlib.Path, default=None,
        help="stage-1 model that stage 2 starts from (default: OUT/stage1.keras)",
    )
    parser.add_argument(
        "--init-backbone", type=pathlib.Path, default=None, metavar="FILE",
        help="pretrained iResNet (.keras from `catface import-weights`) that stage 1 starts "
        "from; overrides model.init",
    )
    parser.add_argument(
        "--fusion", choices=FUSION_KINDS, default=None, help="override stage2.fusion"
    )
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the epochs of the stages that run")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    parser.add_argument(
        "--workers", default=None, metavar="HOST:PORT,...",
        help="train on several machines: every worker's address, the same list on each; "
        "sets train.distribution to multi_worker (worker 0 writes the run's files)",
    )
    parser.add_argument("--task-index", type=int, default=None,
                        help="this machine's position in --workers (0 for the chief)")
    parser.add_argument("--worker-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="with --workers: how long to wait for the other workers to "
                        "start before giving up and naming them (default: 300)")
    parser.set_defaults(run=run)


def run(args):
    stages = STAGES[args.stage]
    if args.init is not None and 1 in stages:
        print("catface train: error: --init only applies to --stage 2", file=sys.stderr)
        return 2
    if args.init_backbone is not None and 1 not in stages:
        print("catface train: error: --init-backbone only applies to stage 1", file=sys.stderr)
        return 2
    if (args.workers is None) != (args.task_index is None):
        print("catface train: error: --workers and --task-index go together", file=sys.stderr)
        return 2
    if not args.worker_timeout > 0:
        print(f"catface train: error: --worker-timeout must be > 0. Received: "
              f"{args.worker_timeout}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        if args.init_backbone is not None:
            config = config.replace("model", init=str(args.init_backbone))
        if args.fusion is not None:
            config = config.replace("stage2", fusion=args.fusion)
        if args.epochs is not None:
            config = config.replace("train", epochs=args.epochs)
            config = config.replace("stage2", epochs=args.epochs)
        if args.workers is not None:
            from catface_keras.distribution import set_tf_config

            set_tf_config(args.workers, args.task_index)
            config = config.replace("train", distribution="multi_worker")
        check_data_files(config)
        out = args.out or output_directory(str(pathlib.Path("runs", args.config.stem)))
    except (ConfigError, ValueError, argparse.ArgumentTypeError) as error:
        print(f"catface train: error: {error}", file=sys.stderr)
        return 2
    if 1 in stages and config.model.init:
        # Checked before TensorFlow loads and the data is read.
        try:
            check_input_file(config.model.init, "model.init: pretrained backbone")
            check_keras_archive(config.model.init)
        except ValueError as error:
            print(f"catface train: error: {error} (write one with `catface import-weights`)",
                  file=sys.stderr)
            return 2
    if args.workers is None:
        return train_and_report(config, out, args.overwrite, "catface train", stages, args.init)
    from catface_keras.distribution import (
        ClusterError,
        describe_worker_failure,
        wait_for_workers,
    )

    try:
        wait_for_workers(args.workers, args.task_index, args.worker_timeout)
    except ClusterError as error:
        print(f"catface train: error: {error}", file=sys.stderr)
        return 2
    try:
        return train_and_report(config, out, args.overwrite, "catface train", stages, args.init)
    except Exception as error:  # a peer lost mid-run surfaces as a TensorFlow error
        message = describe_worker_failure(error, args.workers, args.task_index)
        if message is None:
            raise
        print(f"catface train: error: {message}", file=sys.stderr)
        return 2


def train_and_report(config, out, overwrite, program, stages=(1,), init=None):
    """Runs the stages into `out`, prints the metrics table; returns the exit code."""
    # Imported here so that argument and config errors come back without
    # waiting for TensorFlow to load.
    from catface_keras.models.builders import MissingStage1Error
    from catface_keras.run_directory import STAGE1, STAGE2, OutputDirectoryError, plan_stages
    from catface_keras.trainer import DatasetError, TrainingDivergedError, run_stages
    from catface_keras.weights.pretrained import PretrainedBackboneError

    started = time.monotonic()
    try:
        planned = plan_stages(config, out, stages, overwrite)
        if planned != stages:
            # Stage 2 was interrupted (or never started): resume there.
            print(f"Stage 1 already finished in {out}; going on with stage 2.")
            stages = planned
        # With --overwrite the old run stays in place until every stage has finished.
        _, metrics = run_stages(config, out, stages, init=init, overwrite=overwrite)
    except (
        OutputDirectoryError,
        TrainingDivergedError,
        MissingStage1Error,
        DatasetError,
        ConfigError,
        PretrainedBackboneError,
    ) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print()
    print(format_stage_table(metrics))
    models = "  ".join(
        str(pathlib.Path(out, layout.model_file))
        for stage, layout in ((1, STAGE1), (2, STAGE2))
        if stage in stages
    )
    print(f"\nModels: {models}  Metrics: {pathlib.Path(out, 'metrics.json')}")
    print(f"Wall time: {time.monotonic() - started:.0f} s")
    return 0
