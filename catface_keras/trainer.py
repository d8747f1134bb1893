"""Training runs: one stage sequence, run for stage 1 (multi-branch network) and stage 2 (fusion).

`run_stages(config, out_dir, stages)` is what `catface train` and `catface
demo` call; `run_stage1` and `run_stage2` run one stage. Every stage is
`train_stage`, top to bottom: read the data, write the configuration, seed,
build the model (stage 2: load the stage-1 model it starts from and put the
fusion on top) under the distribution strategy, fit with per-epoch
checkpoints and a backup to resume from, save the model, evaluate the saved
file on held-out identities, write metrics.json. What sets the stages apart
is data (`Stage`); the output directory's files, its overwrite and resume
rules and its owner are `catface_keras.run_directory`'s.
"""

import dataclasses
import functools
import json
import pathlib
import shutil
import sys
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from catface_keras.atomic_files import save_model_atomically
from catface_keras.callbacks import EpochBackup, EpochCheckpoint
from catface_keras.choices import EVALUATION_CONDITIONS as CONDITIONS
from catface_keras.data.sources import UnusableDataError, load_training_data
from catface_keras.degrade import degrade
from catface_keras.distribution import build_for_strategy, make_strategy, worker_output_dir
from catface_keras.evaluation.protocol_data import face_arrays_data
from catface_keras.evaluation.protocols import evaluate
from catface_keras.models.builders import (
    build_stage1_model,
    build_stage2_model,
    check_stage1_file,
    exclude_batch_norm_from_weight_decay,
    load_stage1_model,
    make_optimizer,
)
from catface_keras.models.loading import load_model
from catface_keras.precision import dtype_policy
from catface_keras.run_directory import (
    METRICS_FILE,
    STAGE1,
    STAGE2,
    StageLayout,
    completed_epochs,
    worker_run_directory,
    write_json_atomically,
    write_run_config,
)
from catface_keras.soft_biometrics import BALANCED_POSITIVE_WEIGHTS, balanced_positive_weights


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class DatasetError(ValueError):
    """The configured dataset cannot be read (the message names the file and line)."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """What sets one training stage apart; `train_stage` runs any of them.

    Attributes:
        name: its key in metrics.json.
        layout: where its files go in the output directory.
        seed_offset: added to `train.seed`; stage 2 sees fresh degradations
            of the same faces.
        schedule: `config -> (config, optimizer config)`, the first with this
            stage's `train.epochs`, the second with its learning rates.
        build: `(config, num_classes, start) -> model`, called in the
            strategy's scope.
        start: the model file, in the output directory, that the stage starts
            from (`init` replaces it), or None. The start is checked before the
            data is read, and evaluated beside the stage's own model.
    """

    name: str
    layout: StageLayout
    seed_offset: int
    schedule: Callable
    build: Callable
    start: str | None = None


def _stage2_schedule(config):
    """`stage2.epochs` and its learning rate schedule, with `optimizer`'s other settings."""
    stage2 = config.stage2
    optimizer = dataclasses.replace(
        config.optimizer, learning_rate=stage2.learning_rate, lr_milestones=stage2.lr_milestones
    )
    return config.replace("train", epochs=stage2.epochs), optimizer


STAGES = {
    1: Stage(
        "stage1", STAGE1, seed_offset=0,
        schedule=lambda config: (config, config.optimizer),
        build=lambda config, num_classes, start: build_stage1_model(config, num_classes),
    ),
    2: Stage(
        "stage2", STAGE2, seed_offset=1,
        schedule=_stage2_schedule,
        build=lambda config, num_classes, start: build_stage2_model(
            config, load_stage1_model(start), num_classes
        ),
        start=STAGE1.model_file,
    ),
}


def load_data(config):
    """Train and held-out faces for the configured source (`catface_keras.data.sources`).

    Returns:
        `(train, heldout)`: `train` has `num_examples`, `num_classes`,
        `callbacks` and `paired_dataset(...)`; `heldout` is a `FaceArrays`
        of identities unseen in training, or None when the source has none.
    """
    try:
        return load_training_data(config.data, config.model.attribute_names)
    except (OSError, ValueError) as error:
        # The readers name the file and line; the CLI prints this without a traceback.
        raise DatasetError(str(error)) from error


def with_balanced_positive_weights(config, train_faces):
    """`config` with `loss.attribute_positive_weights: balanced` replaced by the weights
    of `train_faces`' labels (`balanced_positive_weights`), printed; else `config`.

    Raises:
        DatasetError: the source does not list its labels up front (TFRecord shards).
    """
    if config.loss.attribute_positive_weights != BALANCED_POSITIVE_WEIGHTS:
        return config
    names = list(config.model.attribute_names)
    labels = getattr(train_faces, "attribute_labels", None)
    if labels is None:
        raise DatasetError(
            f"loss.attribute_positive_weights: {BALANCED_POSITIVE_WEIGHTS} counts the training "
            f"labels before training, and data.source={config.data.source!r} holds them only "
            "inside its records. Give the weights as numbers (negatives / positives per "
            "attribute)."
        )
    weights, notes = balanced_positive_weights(labels, names)
    print(
        f"loss.attribute_positive_weights: {BALANCED_POSITIVE_WEIGHTS} -> "
        + ", ".join(f"{name} {weight:g}" for name, weight in zip(names, weights))
        + "".join(f"\n  note: {note}" for note in notes),
        flush=True,
    )
    return config.replace("loss", attribute_positive_weights=weights)


HELDOUT_PROTOCOLS = ("verification", "attributes")


def _evaluate_heldout(model, heldout, evaluation, degradation=None):
    """Verification and attributes on the held-out faces, clean, degraded and mixed.

    The one evaluation path (`catface_keras.evaluation.protocols.evaluate`),
    as `catface evaluate --data HELDOUT --pairs N --seed S` runs it; or a note
    saying why not when there are no held-out faces.

    Returns:
        `{"verification": {condition: metrics}, "attributes": {condition: ...}}`
        with the conditions `clean`, `degraded`, `mixed` (attributes: the
        first two), or `{"skipped": reason}`.
    """
    if heldout is None:
        return {
            "skipped": "no held-out faces for this data source; set data.heldout_path (an "
            "image folder of identities not in training) to evaluate"
        }
    data = face_arrays_data(heldout, evaluation.num_pairs, evaluation.seed)
    results, _ = evaluate(
        model, data, HELDOUT_PROTOCOLS, CONDITIONS, degradation, evaluation.seed,
        evaluation.batch_size, evaluation.flip,
    )
    return results


def training_pairs(config, train_faces, start_epoch, seed):
    """Paired HQ/LQ batches for the epochs `[start_epoch, train.epochs)` of a stage.

    The LQ images are degraded as `config.degrade` says.

    Returns:
        `(dataset, steps_per_epoch)`.
    """
    train = config.train
    dataset = train_faces.paired_dataset(
        batch_size=train.batch_size,
        degrade_fn=functools.partial(degrade, config=config.degrade),
        seed=seed,
        start_epoch=start_epoch,
        num_epochs=max(train.epochs - start_epoch, 0),
    )
    return dataset, train_faces.num_examples // train.batch_size


def fit_stage(
    model, dataset, epochs, start_epoch, steps_per_epoch, out_dir, layout, verbose, callbacks
):
    """`model.fit` with per-epoch checkpoints, backup for resuming and TensorBoard.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite.
    """
    backup = out_dir / layout.backup_dir
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    try:
        history = model.fit(
            dataset,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=[
                # Kept until the model and metrics are written (deleted by the
                # caller), so that a run killed during evaluation does not train again.
                EpochBackup(backup),
                EpochCheckpoint(out_dir / layout.checkpoint_pattern),
                keras.callbacks.TensorBoard(str(out_dir / layout.logs_dir)),
                keras.callbacks.TerminateOnNaN(),
                *callbacks,
            ],
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself, per epoch, from the seed
        )
    except UnusableDataError as error:
        raise DatasetError(str(error)) from None
    except tf.errors.DataLossError as error:
        raise DatasetError(
            f"A training file is corrupt: {error.message}. Convert the dataset again "
            f"(catface data convert --overwrite); {backup} holds the last finished epoch."
        ) from None
    losses = history.history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        raise TrainingDivergedError(
            f"Training diverged (loss {losses[-1]}) in epoch {start_epoch + len(losses)}; "
            f"{backup} holds the last finished epoch. Lower {layout.learning_rate_key} "
            "or optimizer.global_clipnorm and start again."
        )
    return history


def train_stage(config, stage, out_dir, init=None, verbose="auto", callbacks=()):
    """Trains stage `stage` (1 or 2) in `out_dir` as it is; the caller owns the directory.

    Args:
        config: an `ExperimentConfig`.
        stage: 1 (the multi-branch network) or 2 (the fusion on top of it).
        out_dir: output directory (`catface_keras.run_directory`).
        init: the model file the stage starts from, where it starts from one
            (stage 2; default `out_dir/stage1.keras`).
        verbose, callbacks: as in `run_stages`.

    Returns:
        `(model, metrics)`: the trained training model (`MultiBranchTraining`
        or `FusionTraining`; its `network` is what the stage's model file
        holds) and the dict written to metrics.json: `{"stage1": ...}`, and for stage 2 `{"stage1": ...,
        "stage2": ...}`, both stages evaluated on the same held-out pairs.
    """
    stage = STAGES[stage]
    out_dir = pathlib.Path(out_dir)
    stage_config, optimizer_config = stage.schedule(config)
    start = None
    if stage.start is not None:
        start = pathlib.Path(init) if init is not None else out_dir / stage.start
        check_stage1_file(start)  # before reading the dataset, which can take a while
    train_faces, test_faces = load_data(config)
    write_run_config(config, out_dir, stage.layout)
    config = with_balanced_positive_weights(config, train_faces)
    seed = config.train.seed + stage.seed_offset
    keras.utils.set_random_seed(seed)
    start_epoch = completed_epochs(out_dir, stage.layout)
    dataset, steps_per_epoch = training_pairs(stage_config, train_faces, start_epoch, seed)
    strategy = make_strategy(config.train.distribution)
    with dtype_policy(config.train.mixed_precision), strategy.scope():
        model = stage.build(config, train_faces.num_classes, start)
        optimizer = make_optimizer(optimizer_config, steps_per_epoch)
        exclude_batch_norm_from_weight_decay(optimizer, model)
        model.compile(optimizer=optimizer)
        build_for_strategy(model, strategy)
    metrics = {}
    if start is not None:
        # Before training, so that a kill during this stage does not lose them.
        metrics[STAGES[1].name] = _start_metrics(out_dir, start, test_faces, config)
    fit_stage(
        model, dataset, stage_config.train.epochs, start_epoch, steps_per_epoch, out_dir,
        stage.layout, verbose, [*train_faces.callbacks, *callbacks],
    )
    # The inference network alone; the checkpoints hold the training model.
    model_file = out_dir / stage.layout.model_file
    save_model_atomically(model.network, model_file)
    # Held-out metrics come from the saved file, as `catface evaluate` and serving load
    # it: a model trained under mixed precision is saved without its dtype policy and
    # loads in float32, and `predict` under MultiWorkerMirroredStrategy would only see
    # this worker's share of the faces.
    metrics[stage.name] = _evaluate_heldout(
        load_model(model_file), test_faces, config.evaluation, config.degrade
    )
    write_json_atomically(metrics, out_dir / METRICS_FILE)
    shutil.rmtree(out_dir / stage.layout.backup_dir, ignore_errors=True)
    return model, metrics


def _start_metrics(out_dir, start, test_faces, config):
    """Held-out metrics of the stage-1 model `start`: reused from its own run in `out_dir`.

    Saved metrics are reused only when they hold every condition (a run of an
    older version used other names) or record a skipped evaluation.
    """
    metrics_path = out_dir / METRICS_FILE
    if start.resolve() == (out_dir / STAGE1.model_file).resolve() and metrics_path.exists():
        saved = json.loads(metrics_path.read_text()).get(STAGES[1].name, {})
        if "skipped" in saved or set(saved.get("verification", {})) == set(CONDITIONS):
            return saved
    return _evaluate_heldout(load_model(start), test_faces, config.evaluation, config.degrade)


def run_stages(config, out_dir, stages=(1, 2), init=None, overwrite=False, verbose="auto",
               callbacks=()):
    """Runs `stages` (`(1,)`, `(2,)` or `(1, 2)`) into `out_dir` as one run.

    Args:
        config: an `ExperimentConfig`; `config.stage2` holds stage 2's fusion
            and schedule, `config.optimizer` the rest of the optimiser.
        out_dir: output directory (`catface_keras.run_directory`); stage 2
            may run in the stage-1 run's own directory.
        init: the stage-1 model file that stage 2 starts from (default:
            `out_dir/stage1.keras`).
        overwrite: replace a finished run in `out_dir`, only once every stage
            has finished (see `run_directory.run_directory`).
        verbose: Keras `fit` verbosity; "auto" shows a progress bar on a
            terminal and one line per epoch otherwise.
        callbacks: extra Keras callbacks, run after the checkpointing ones.

    Returns:
        The last stage's `(model, metrics)` (see `train_stage`).

    Raises:
        run_directory.RunDirectoryBusyError: another live run owns `out_dir`.

    Under `train.distribution: multi_worker` every worker calls this with
    the same arguments; only the chief writes into (and owns) `out_dir`.
    """
    stages = sorted(stages)
    # First: a multi-worker strategy must exist before TensorFlow runs anything.
    strategy = make_strategy(config.train.distribution)
    with worker_output_dir(out_dir, strategy) as write_dir, worker_run_directory(
        config, out_dir, overwrite, STAGES[stages[0]].layout, write_dir
    ) as work:
        for stage in stages:
            result = train_stage(config, stage, work, init, verbose, callbacks)
        return result


def run_stage1(config, out_dir, overwrite=False, verbose="auto", callbacks=()):
    """Trains the stage-1 model into `out_dir`; `run_stages` with `(1,)`."""
    return run_stages(config, out_dir, (1,), None, overwrite, verbose, callbacks)


def run_stage2(config, out_dir, init=None, overwrite=False, verbose="auto", callbacks=()):
    """Trains the fusion module on top of a stage-1 model; `run_stages` with `(2,)`."""
    return run_stages(config, out_dir, (2,), init, overwrite, verbose, callbacks)
