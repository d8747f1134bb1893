"""Training runs: stage 1 (multi-branch network) and stage 2 (fusion).

`run_stage1(config, out_dir)` and `run_stage2(config, out_dir)` are what
`catface demo` and `catface train` call. An output directory holds:

    stage1.keras          the trained stage-1 model (written once training ends)
    stage2.keras          the trained stage-2 (fused) model
    metrics.json          held-out evaluation, `{"stage1": ..., "stage2": ...}`
    config.yaml           the configuration the run used
    checkpoints/          one `.keras` model per epoch (`stage2_epoch_*` for stage 2)
    logs/                 TensorBoard (`logs/stage2/` for stage 2)
    backup/, backup_stage2/
                          `keras.callbacks.BackupAndRestore` state while running

A run that was killed resumes from its backup directory when started again
with the same directory; a directory that already holds a finished run of
that stage is refused unless `overwrite=True`. Overwriting stage 1 also
removes the stage-2 results built on it.
"""

import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
import yaml

from catface_keras.config import config_to_dict
from catface_keras.data.sources import load_training_data
from catface_keras.degrade import degrade
from catface_keras.distribution import CrossReplicaClipSGD, worker_output_dir
from catface_keras.evaluation.heldout import evaluate_heldout
from catface_keras.models.fusion import DEFAULT_FUSION_OPTIONS, FusionModel
from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.weights.pretrained import (
    initialize_from_pretrained,
    load_pretrained_backbone,
    pretrained_backbone_spec,
)

METRICS_FILE = "metrics.json"


@dataclasses.dataclass(frozen=True)
class StageLayout:
    """Where one training stage keeps its files inside the output directory."""

    model_file: str
    backup_dir: str
    checkpoint_pattern: str
    logs_dir: str
    learning_rate_key: str  # the config key to lower when the stage diverges


STAGE1 = StageLayout(
    "stage1.keras", "backup", "checkpoints/epoch_{epoch:03d}.keras", "logs",
    "optimizer.learning_rate",
)
STAGE2 = StageLayout(
    "stage2.keras", "backup_stage2", "checkpoints/stage2_epoch_{epoch:03d}.keras", "logs/stage2",
    "stage2.learning_rate",
)


class RandomStateBackup(keras.callbacks.Callback):
    """Backs up the states of the model's random seed generators every epoch.

    `BackupAndRestore` saves weights and optimiser state but not the seed
    generators that draw dropout masks, so without this a resumed run would
    draw other masks than an uninterrupted one. Goes after `BackupAndRestore`.
    """

    def __init__(self, path):
        super().__init__()
        self.path = pathlib.Path(path)

    def _states(self):
        return [v for v in self.model.non_trainable_variables if "seed_generator_state" in v.path]

    def on_train_begin(self, logs=None):
        if self.path.exists():
            saved = np.load(self.path)
            for index, variable in enumerate(self._states()):
                variable.assign(saved[f"state_{index}"])

    def on_epoch_end(self, epoch, logs=None):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        states = {f"state_{i}": np.asarray(v.numpy()) for i, v in enumerate(self._states())}
        with open(self.path, "wb") as handle:
            np.savez(handle, **states)


# A worker whose peers died fails after this long instead of waiting forever.
COLLECTIVE_TIMEOUT_S = 600
_MULTI_WORKER_STRATEGY = None


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class OutputDirectoryError(RuntimeError):
    """The output directory holds a finished run that would be overwritten."""


class MissingStage1Error(FileNotFoundError):
    """Stage 2 was asked for without a trained stage-1 model."""


class DatasetError(ValueError):
    """The configured dataset cannot be read (the message names the file and line)."""


def make_strategy(distribution):
    """The `tf.distribute` strategy named by `train.distribution`.

    `multi_worker` reads the cluster from `TF_CONFIG` (`catface train
    --workers ... --task-index I` writes it) and must be created before
    TensorFlow runs anything else in the process.
    """
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        # One per process (stage 1 then stage 2 share it): TensorFlow sets up
        # the cluster's collectives once, from the TF_CONFIG environment variable.
        if _MULTI_WORKER_STRATEGY is None:
            globals()["_MULTI_WORKER_STRATEGY"] = tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(
                    timeout_seconds=COLLECTIVE_TIMEOUT_S
                )
            )
        return _MULTI_WORKER_STRATEGY
    if distribution == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    raise ValueError(
        "`distribution` must be one of 'auto', 'none', 'mirrored', 'multi_worker'. "
        f"Received: distribution={distribution!r}"
    )


def build_for_strategy(model, strategy):
    """Builds the optimizer's variables now, in `strategy`'s scope.

    Works around two places where Keras 3.15's `fit` fails under
    `MultiWorkerMirroredStrategy`: it builds a model made under a strategy
    by averaging one input batch over workers (impossible for a dict of
    inputs; the stage models are built when constructed, so only the
    optimizer is left, built here instead), and it averages the step's
    logs over workers along axis 0 (scalars have none: they travel as
    `(1,)` tensors and come back scalars).
    """
    model.optimizer.build(model.trainable_variables)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def step_with_vector_logs(data, step=step):
            return {key: tf.reshape(value, [-1]) for key, value in step(data).items()}

        setattr(model, name, step_with_vector_logs)


def make_optimizer(config, steps_per_epoch):
    """SGD with momentum and a piecewise-constant (step) learning rate."""
    boundaries = [milestone * steps_per_epoch for milestone in config.lr_milestones]
    if boundaries != sorted(boundaries) or any(b <= 0 for b in boundaries):
        raise ValueError(
            "`optimizer.lr_milestones` must be increasing positive epochs. "
            f"Received: lr_milestones={config.lr_milestones}"
        )
    learning_rate = config.learning_rate
    if boundaries:
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries,
            [config.learning_rate * config.lr_decay_factor**i for i in range(len(boundaries) + 1)],
        )
    return CrossReplicaClipSGD(
        learning_rate=learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay or None,
        global_clipnorm=config.global_clipnorm or None,
    )


def exclude_batch_norm_from_weight_decay(optimizer, model):
    """Weight decay skips BN parameters, as in the official AdaFace recipe."""
    batch_norm_variables = [
        variable
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
        for variable in layer.trainable_variables
    ]
    optimizer.exclude_from_weight_decay(var_list=batch_norm_variables)


def build_stage1_model(config, num_classes):
    """The stage-1 model; started from `model.init`'s pretrained iResNet when set."""
    model_config, loss = config.model, config.loss
    pretrained, backbone = None, model_config.backbone
    if model_config.init:
        pretrained = load_pretrained_backbone(model_config.init)
        backbone = pretrained_backbone_spec(backbone, pretrained)
    model = MultiBranchModel(
        num_classes=num_classes,
        backbone=backbone,
        image_size=config.data.image_size,
        branch_stage=model_config.branch_stage,
        embedding_dim=model_config.embedding_dim,
        attribute_names=model_config.attribute_names,
        attention_key_dim=model_config.attention_key_dim,
        attention_residual=model_config.attention_residual,
        dropout=model_config.dropout,
        adaface={
            "margin": loss.adaface_margin,
            "h": loss.adaface_h,
            "scale": loss.adaface_scale,
            "t_alpha": loss.adaface_t_alpha,
        },
        loss_weights={
            "fr": loss.fr_weight,
            "sb": loss.sb_weight,
            "distillation": loss.distillation_weight,
        },
        distillation=loss.distillation,
        attribute_weights=loss.attribute_weights,
        attribute_positive_weights=loss.attribute_positive_weights,
        synchronized_batch_norm=model_config.synchronized_batch_norm,
    )
    if pretrained is not None:
        initialize_from_pretrained(model, pretrained)
    return model


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


def _evaluate_heldout(model, heldout, evaluation):
    """`evaluate_heldout`, or a note saying why not when there are no held-out faces."""
    if heldout is None:
        return {
            "skipped": "no held-out faces for this data source; set data.heldout_path (an "
            "image folder of identities not in training) to evaluate"
        }
    return evaluate_heldout(model, heldout, evaluation)


def completed_epochs(out_dir, layout=STAGE1):
    """Epochs finished by an interrupted run of a stage in `out_dir` (0 if none).

    Reads the metadata file that `keras.callbacks.BackupAndRestore` writes,
    so that the data stream can restart at the same epoch as the weights.
    """
    metadata = pathlib.Path(out_dir, layout.backup_dir, "training_metadata.json")
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def stage_finished(out_dir, layout):
    """Whether `out_dir` holds a finished (not interrupted) run of a stage."""
    out_dir = pathlib.Path(out_dir)
    return (out_dir / layout.model_file).exists() and not (out_dir / layout.backup_dir).exists()


def check_output_directory(out_dir, overwrite, layout=STAGE1):
    """Refuses to train a stage over its finished run unless `overwrite`."""
    out_dir = pathlib.Path(out_dir)
    finished = out_dir / layout.model_file
    if stage_finished(out_dir, layout):
        if not overwrite:
            raise OutputDirectoryError(
                f"{out_dir} already holds a finished run ({finished}). Choose another "
                "output directory or pass --overwrite to replace it."
            )
        if layout == STAGE1:
            # Everything, stage 2 included: it was trained on this stage 1.
            stale = [out_dir / name for name in (METRICS_FILE, "checkpoints", "logs", STAGE2.backup_dir)]
            stale += [out_dir / STAGE1.model_file, out_dir / STAGE2.model_file]
        else:
            stale = [out_dir / STAGE2.model_file, out_dir / STAGE2.logs_dir]
            stale += (out_dir / "checkpoints").glob("stage2_epoch_*.keras")
        for path in stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


# CPU flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU feature flags the kernel reports (empty where it does not)."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def choose_dtype_policy(name="auto", gpus=None, flags=None):
    """The Keras dtype policy for `train.mixed_precision`.

    `auto`: `mixed_float16` (with loss scaling, which `compile` adds) on a
    GPU; `mixed_bfloat16` on a CPU with native bf16 arithmetic (AVX-512-BF16
    or AMX), where it is faster; `float32` on other CPUs, where emulated bf16
    is several times slower. Any other name is returned as given (None: leave
    the global policy alone).
    """
    if name != "auto":
        return name
    if gpus is None:
        gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "mixed_float16"
    if flags is None:
        flags = cpu_flags()
    return "mixed_bfloat16" if any(flag in flags for flag in NATIVE_BF16_FLAGS) else "float32"


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy for the block (None: unchanged; "auto":
    `choose_dtype_policy`)."""
    previous = keras.config.dtype_policy()
    name = choose_dtype_policy(name)
    if name:
        keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def save_atomically(model, path):
    """Saves to a temporary file next to `path`, then renames it into place."""
    path = pathlib.Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        temporary = pathlib.Path(scratch, path.name)
        model.save(temporary)
        os.replace(temporary, path)


def write_json_atomically(value, path):
    path = pathlib.Path(path)
    temporary = path.with_suffix(path.suffix + ".partial")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


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
    history = model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=[
            # Kept until the model and metrics are written (deleted by the
            # caller), so that a run killed during evaluation does not train again.
            keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
            RandomStateBackup(backup / "random_state.npz"),
            keras.callbacks.ModelCheckpoint(str(out_dir / layout.checkpoint_pattern)),
            keras.callbacks.TensorBoard(str(out_dir / layout.logs_dir)),
            keras.callbacks.TerminateOnNaN(),
            *callbacks,
        ],
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself, per epoch, from the seed
    )
    losses = history.history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        raise TrainingDivergedError(
            f"Training diverged (loss {losses[-1]}) in epoch {start_epoch + len(losses)}; "
            f"{backup} holds the last finished epoch. Lower {layout.learning_rate_key} "
            "or optimizer.global_clipnorm and start again."
        )
    return history


def _write_config(config, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def run_stage1(config, out_dir, overwrite=False, verbose="auto", callbacks=()):
    """Trains the stage-1 model, evaluates it on held-out identities, saves both.

    Args:
        config: an `ExperimentConfig`.
        out_dir: output directory (see the module docstring).
        overwrite: replace a finished run in `out_dir`.
        verbose: Keras `fit` verbosity; "auto" shows a progress bar on a
            terminal and one line per epoch otherwise.
        callbacks: extra Keras callbacks, run after the checkpointing ones.

    Returns:
        `(model, metrics)`: the trained `MultiBranchModel` and the nested
        dict written to `metrics.json` (`{"stage1": {...}}`).

    Under `train.distribution: multi_worker` every worker calls this with
    the same arguments; only the chief writes into `out_dir`.
    """
    # First: a multi-worker strategy must exist before TensorFlow runs anything.
    strategy = make_strategy(config.train.distribution)
    with _worker_directory(out_dir, overwrite, STAGE1, strategy) as write_dir:
        return _run_stage1(config, write_dir, strategy, overwrite, verbose, callbacks)


@contextlib.contextmanager
def _worker_directory(out_dir, overwrite, layout, strategy):
    """`out_dir` on the chief; on other workers a scratch copy of its backup.

    A non-chief worker refuses what the chief refuses (so that it does not
    wait for a chief that stopped) and resumes from the chief's backup, which
    assumes a filesystem that all workers share.
    """
    out_dir = pathlib.Path(out_dir)
    with worker_output_dir(out_dir, strategy) as write_dir:
        if write_dir != out_dir:
            if not overwrite:
                check_output_directory(out_dir, False, layout)
            # A finished run has no backup; an interrupted one resumes, with or without overwrite.
            if (out_dir / layout.backup_dir).is_dir():
                shutil.copytree(out_dir / layout.backup_dir, write_dir / layout.backup_dir)
        yield write_dir


def _local_copy(model, strategy):
    """`model` itself, or under multi-worker training a copy outside the strategy.

    `predict` under `MultiWorkerMirroredStrategy` shards its input over the
    workers and returns only this worker's part, so held-out evaluation runs
    on a copy that sees all the faces.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _run_stage1(config, out_dir, strategy, overwrite, verbose, callbacks):
    out_dir = pathlib.Path(out_dir)
    check_output_directory(out_dir, overwrite, STAGE1)
    _write_config(config, out_dir)
    keras.utils.set_random_seed(config.train.seed)
    train_faces, test_faces = load_data(config)
    start_epoch = completed_epochs(out_dir, STAGE1)
    dataset, steps_per_epoch = training_pairs(config, train_faces, start_epoch, config.train.seed)
    with dtype_policy(config.train.mixed_precision), strategy.scope():
        model = build_stage1_model(config, train_faces.num_classes)
        optimizer = make_optimizer(config.optimizer, steps_per_epoch)
        exclude_batch_norm_from_weight_decay(optimizer, model)
        model.compile(optimizer=optimizer)
        build_for_strategy(model, strategy)
    fit_stage(
        model, dataset, config.train.epochs, start_epoch, steps_per_epoch, out_dir, STAGE1,
        verbose,
        [*train_faces.callbacks, *callbacks],
    )
    save_atomically(model, out_dir / STAGE1.model_file)
    metrics = {
        "stage1": _evaluate_heldout(_local_copy(model, strategy), test_faces, config.evaluation)
    }
    write_json_atomically(metrics, out_dir / METRICS_FILE)
    shutil.rmtree(out_dir / STAGE1.backup_dir, ignore_errors=True)
    return model, metrics


def build_stage2_model(config, stage1):
    """The `FusionModel` that `config.stage2` describes, on top of `stage1`."""
    stage2 = config.stage2
    return FusionModel(
        stage1,
        fusion=stage2.fusion,
        fusion_options={key: getattr(stage2, key) for key in DEFAULT_FUSION_OPTIONS},
        embedding_dim=stage2.embedding_dim,
        dropout=stage2.dropout,
        train_stage1=stage2.train_stage1,
        stage1_lr_multiplier=stage2.stage1_lr_multiplier,
    )


def check_stage1_file(path):
    """Raises `MissingStage1Error` unless the stage-1 model file `path` exists."""
    if not pathlib.Path(path).is_file():
        raise MissingStage1Error(
            f"Stage 2 starts from a trained stage-1 model, and {path} does not exist. "
            "Train stage 1 first (catface train --config FILE --out DIR) or pass "
            "--init DIR/stage1.keras."
        )


def load_stage1_model(path, num_classes):
    """Loads the stage-1 model that stage 2 starts from, checking it fits the data."""
    check_stage1_file(path)
    model = keras.saving.load_model(path, compile=False)
    if not isinstance(model, MultiBranchModel):
        raise MissingStage1Error(
            f"{path} holds a {type(model).__name__}, not a stage-1 MultiBranchModel."
        )
    if model.num_classes != num_classes:
        raise MissingStage1Error(
            f"{path} was trained on {model.num_classes} identities but the configured "
            f"data has {num_classes}; stage 2 must use stage 1's training data."
        )
    return model


def run_stage2(config, out_dir, init=None, overwrite=False, verbose="auto", callbacks=()):
    """Trains the fusion module on top of a stage-1 model; evaluates both stages.

    Args:
        config: an `ExperimentConfig`; `config.stage2` holds the fusion and
            its schedule, `config.optimizer` the rest of the optimiser.
        out_dir: output directory (see the module docstring); it may be the
            stage-1 run's own directory.
        init: the stage-1 model file (default: `out_dir/stage1.keras`).
        overwrite, verbose, callbacks: as in `run_stage1`.

    Returns:
        `(model, metrics)`: the trained `FusionModel` and the dict written to
        `metrics.json`, `{"stage1": {...}, "stage2": {...}}`, both stages
        evaluated on the same held-out pairs.
    """
    out_dir = pathlib.Path(out_dir)
    init = pathlib.Path(init) if init is not None else out_dir / STAGE1.model_file
    strategy = make_strategy(config.train.distribution)
    with _worker_directory(out_dir, overwrite, STAGE2, strategy) as write_dir:
        return _run_stage2(config, write_dir, init, strategy, overwrite, verbose, callbacks)


def _run_stage2(config, out_dir, init, strategy, overwrite, verbose, callbacks):
    stage2 = config.stage2
    stage_config = config.replace("train", epochs=stage2.epochs)
    check_output_directory(out_dir, overwrite, STAGE2)
    check_stage1_file(init)  # before reading the dataset, which can take a while
    train_faces, test_faces = load_data(config)
    num_classes = train_faces.num_classes
    _write_config(config, out_dir)
    # Another seed than stage 1: stage 2 sees fresh degradations of the same faces.
    seed = config.train.seed + 1
    keras.utils.set_random_seed(seed)
    start_epoch = completed_epochs(out_dir, STAGE2)
    dataset, steps_per_epoch = training_pairs(stage_config, train_faces, start_epoch, seed)
    optimizer_config = dataclasses.replace(
        config.optimizer, learning_rate=stage2.learning_rate, lr_milestones=stage2.lr_milestones
    )
    with dtype_policy(config.train.mixed_precision), strategy.scope():
        stage1 = load_stage1_model(init, num_classes)
        model = build_stage2_model(config, stage1)
        optimizer = make_optimizer(optimizer_config, steps_per_epoch)
        exclude_batch_norm_from_weight_decay(optimizer, model)
        model.compile(optimizer=optimizer)
        build_for_strategy(model, strategy)
    # Before training: with stage2.train_stage1 the stage-1 weights change.
    stage1_metrics = _stage1_metrics(
        out_dir, init, _local_copy(stage1, strategy), test_faces, config.evaluation
    )
    fit_stage(
        model, dataset, stage2.epochs, start_epoch, steps_per_epoch, out_dir, STAGE2, verbose,
        [*train_faces.callbacks, *callbacks],
    )
    save_atomically(model, out_dir / STAGE2.model_file)
    metrics = {
        "stage1": stage1_metrics,
        "stage2": _evaluate_heldout(_local_copy(model, strategy), test_faces, config.evaluation),
    }
    write_json_atomically(metrics, out_dir / METRICS_FILE)
    shutil.rmtree(out_dir / STAGE2.backup_dir, ignore_errors=True)
    return model, metrics


def _stage1_metrics(out_dir, init, stage1, test_faces, evaluation):
    """Stage 1's held-out metrics: reused from its own run in `out_dir`, else computed."""
    metrics_path = out_dir / METRICS_FILE
    if init.resolve() == (out_dir / STAGE1.model_file).resolve() and metrics_path.exists():
        saved = json.loads(metrics_path.read_text())
        if "stage1" in saved:
            return saved["stage1"]
    return _evaluate_heldout(stage1, test_faces, evaluation)
