"""Training runs: stage 1 (multi-branch network) and stage 2 (fusion).

`run_stage1(config, out_dir)` and `run_stage2(config, out_dir)` are what
`catface demo` and `catface train` call. An output directory holds:

    stage1.keras          the trained stage-1 network (inference only; written once
                          training ends)
    stage2.keras          the trained stage-2 (fused) network
    metrics.json          held-out evaluation, `{"stage1": ..., "stage2": ...}`
    config.yaml           the configuration the run used
    stage2_config.yaml    stage 2's configuration, when it differs from config.yaml
    checkpoints/          one `.keras` training model per epoch (`stage2_epoch_*` for
                          stage 2): the network with its AdaFace head
                          (`models.load_model` gives the network)
    logs/                 TensorBoard (`logs/stage2/` for stage 2)
    backup/, backup_stage2/
                          what resuming needs (`EpochBackup`) while running

Every file is written atomically (`catface_keras.atomic_files`): a process
killed at any moment leaves the previous version, never a truncated one. A
run that was killed resumes from its backup directory when started again
with the same directory; a directory that already holds a finished run of
that stage is refused unless `overwrite=True`. An overwrite trains in a
hidden sibling directory (`.NAME.partial`, stage 1's files linked in when
only stage 2 is replaced) and swaps it into place only once the new models
and metrics are written: until then, and after any failure, the old run is
untouched (a killed overwrite resumes from the sibling). Overwriting stage 1
also replaces the stage-2 results built on it.
"""

import contextlib
import dataclasses
import errno
import functools
import json
import pathlib
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf
import yaml

from catface_keras.atomic_files import (
    describe_write_error,
    remove_path,
    replacing_directory,
    require_directory_path,
    save_model_atomically,
    scratch_directory,
    write_atomically,
    write_text_atomically,
)
from catface_keras.choices import EVALUATION_CONDITIONS as CONDITIONS
from catface_keras.config import config_to_dict
from catface_keras.data.sources import UnusableDataError, load_training_data
from catface_keras.degrade import degrade
from catface_keras.distribution import (
    CrossReplicaClipSGD,
    build_for_strategy,
    make_strategy,
    worker_output_dir,
)
from catface_keras.evaluation.protocol_data import face_arrays_data
from catface_keras.evaluation.protocols import evaluate
from catface_keras.models.fusion import DEFAULT_FUSION_OPTIONS, FusionModel
from catface_keras.models.loading import load_model
from catface_keras.precision import dtype_policy
from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.stage1_training import MultiBranchTraining
from catface_keras.models.stage2_training import FusionTraining
from catface_keras.weights.pretrained import (
    initialize_from_pretrained,
    load_pretrained_backbone,
    pretrained_backbone_spec,
)

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
STAGE2_CONFIG_FILE = "stage2_config.yaml"


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


class EpochBackup(keras.callbacks.Callback):
    """Backs up what resuming needs after every epoch, never overwriting the last good copy.

    `backup_dir/epoch_NNNN/` holds `model.weights.h5` (weights and optimiser
    state) and `random_state.npz` (the seed generators that draw dropout
    masks, so that a resumed run draws the masks an uninterrupted one would).
    Each epoch's directory is written under a temporary name, synced and
    renamed; then `training_metadata.json` (`{"epoch": N, "snapshot":
    "epoch_NNNN"}`) is replaced atomically to point at it (the commit), and
    only then is the previous epoch's directory deleted. A kill at any moment
    leaves a complete backup to resume from. (Keras' `BackupAndRestore`
    rewrites one weights file in place, which a kill leaves truncated.)
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = pathlib.Path(backup_dir)

    def _states(self):
        return [v for v in self.model.non_trainable_variables if "seed_generator_state" in v.path]

    def on_train_begin(self, logs=None):
        metadata = read_backup_metadata(self.backup_dir)
        if metadata is None:
            return
        snapshot = self.backup_dir / metadata.get("snapshot", "")
        if "snapshot" in metadata:
            weights, random_state = snapshot / "model.weights.h5", snapshot / "random_state.npz"
        else:  # written by Keras' BackupAndRestore (older versions)
            weights = self.backup_dir / "latest.weights.h5"
            random_state = self.backup_dir / "random_state.npz"
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(weights)
            saved = np.load(random_state) if random_state.exists() else {}
            states = [saved[f"state_{i}"] for i in range(len(self._states()))] if saved else []
        except (OSError, ValueError, KeyError) as error:
            raise BackupError(
                f"Cannot resume from {weights}: {error}. The file is incomplete or damaged "
                "(older versions rewrote it in place, and a process killed during the write "
                f"left it truncated). Delete {self.backup_dir} to train this stage again from "
                "its first epoch; its finished epochs are in checkpoints/."
            ) from None
        for variable, state in zip(self._states(), states):
            variable.assign(state)
        self.model._initial_epoch = int(metadata["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch_{epoch + 1:04d}"
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        states = {f"state_{i}": np.asarray(v.numpy()) for i, v in enumerate(self._states())}

        def write(directory):
            directory.mkdir()
            self.model.save_weights(directory / "model.weights.h5")
            with open(directory / "random_state.npz", "wb") as handle:
                np.savez(handle, **states)

        remove_path(self.backup_dir / name)  # never the committed one: that is an earlier epoch
        write_atomically(self.backup_dir / name, write)
        metadata = {"epoch": epoch + 1, "batch": 0, "snapshot": name}
        write_text_atomically(json.dumps(metadata), self.backup_dir / BACKUP_METADATA)
        for entry in self.backup_dir.iterdir():
            if entry.name != name and entry.name != BACKUP_METADATA:
                remove_path(entry)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model after every epoch to `pattern.format(epoch=N)`, atomically."""

    def __init__(self, pattern):
        super().__init__()
        self.pattern = str(pattern)

    def on_train_begin(self, logs=None):
        # Temporaries of a process killed while saving.
        directory = pathlib.Path(self.pattern).parent
        for leftover in directory.glob(".*.partial-*") if directory.is_dir() else ():
            remove_path(leftover)

    def on_epoch_end(self, epoch, logs=None):
        path = pathlib.Path(self.pattern.format(epoch=epoch + 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model_atomically(self.model, path)


BACKUP_METADATA = "training_metadata.json"


def read_backup_metadata(backup_dir):
    """The committed backup's metadata (`{"epoch": N, ...}`), or None when there is none."""
    path = pathlib.Path(backup_dir, BACKUP_METADATA)
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text())
        int(metadata["epoch"])
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(
            f"Cannot resume: {path} is damaged ({error}). Delete {backup_dir} to train this "
            "stage again from its first epoch."
        ) from None
    return metadata


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class OutputDirectoryError(RuntimeError):
    """The output directory holds a finished run that would be overwritten."""


class BackupError(OutputDirectoryError):
    """A stage's backup cannot be read to resume from."""


class OutputWriteError(OutputDirectoryError):
    """A result could not be written (a full disk); nothing finished was lost."""


class MissingStage1Error(FileNotFoundError):
    """Stage 2 was asked for without a trained stage-1 model."""


class DatasetError(ValueError):
    """The configured dataset cannot be read (the message names the file and line)."""


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


def adaface_arguments(loss):
    """The `AdaFace` arguments of a `LossConfig`."""
    return {
        "margin": loss.adaface_margin,
        "h": loss.adaface_h,
        "scale": loss.adaface_scale,
        "t_alpha": loss.adaface_t_alpha,
    }


def build_stage1_model(config, num_classes):
    """The stage-1 training model (a `MultiBranchTraining` around the network).

    The network starts from `model.init`'s pretrained iResNet when set.
    """
    model_config, loss = config.model, config.loss
    pretrained, backbone = None, model_config.backbone
    if model_config.init:
        pretrained = load_pretrained_backbone(model_config.init)
        backbone = pretrained_backbone_spec(backbone, pretrained)
    network = MultiBranchModel(
        backbone=backbone,
        image_size=config.data.image_size,
        branch_stage=model_config.branch_stage,
        embedding_dim=model_config.embedding_dim,
        attribute_names=model_config.attribute_names,
        attention_key_dim=model_config.attention_key_dim,
        attention_residual=model_config.attention_residual,
        dropout=model_config.dropout,
        block_attention=model_config.block_attention,
        perceptibility_attention=model_config.perceptibility_attention,
        synchronized_batch_norm=model_config.synchronized_batch_norm,
    )
    if pretrained is not None:
        initialize_from_pretrained(network, pretrained)
    model = MultiBranchTraining(
        network,
        num_classes=num_classes,
        adaface=adaface_arguments(loss),
        partial_fc_sample_rate=loss.partial_fc_sample_rate,
        loss_weights={
            "fr": loss.fr_weight,
            "sb": loss.sb_weight,
            "distillation": loss.distillation_weight,
        },
        distillation=loss.distillation,
        distillation_stage=loss.distillation_stage,
        train_on=loss.train_on,
        lq_images=loss.lq_images,
        index_diversion_weight=loss.index_diversion_weight,
        attribute_weights=loss.attribute_weights,
        attribute_positive_weights=loss.attribute_positive_weights,
    )
    if loss.teacher:
        model.set_teacher(load_stage1_model(loss.teacher, role="teacher"))
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


def completed_epochs(out_dir, layout=STAGE1):
    """Epochs finished by an interrupted run of a stage in `out_dir` (0 if none).

    Reads the metadata file that `keras.callbacks.BackupAndRestore` writes,
    so that the data stream can restart at the same epoch as the weights.
    """
    metadata = read_backup_metadata(pathlib.Path(out_dir, layout.backup_dir))
    return 0 if metadata is None else int(metadata["epoch"])


def stage_finished(out_dir, layout):
    """Whether `out_dir` holds a finished (not interrupted) run of a stage."""
    out_dir = pathlib.Path(out_dir)
    return (out_dir / layout.model_file).exists() and not (out_dir / layout.backup_dir).exists()


def check_output_directory(out_dir, overwrite, layout=STAGE1):
    """Refuses to train a stage over its finished run unless `overwrite`.

    Returns:
        Whether a finished run must be replaced (it is left in place here;
        `run_directory` replaces it once the new run has finished).
    """
    out_dir = pathlib.Path(out_dir)
    try:
        require_directory_path(out_dir)
    except ValueError as error:
        raise OutputDirectoryError(str(error)) from None
    finished = out_dir / layout.model_file
    if stage_finished(out_dir, layout):
        if not overwrite:
            raise OutputDirectoryError(
                f"{out_dir} already holds a finished run ({finished}). Choose another "
                "output directory or pass --overwrite to replace it."
            )
        return True
    return False


def _replaced_by(layout):
    """`keep(relative path)` for the files of a finished run that a new run of `layout` keeps."""
    if layout == STAGE1:
        # Everything of ours goes, stage 2 included: it was trained on this stage 1.
        ours = {METRICS_FILE, CONFIG_FILE, STAGE2_CONFIG_FILE, "checkpoints", "logs",
                STAGE1.model_file, STAGE2.model_file, STAGE1.backup_dir, STAGE2.backup_dir}
        return lambda path: path.split("/")[0] not in ours
    return lambda path: not (
        path in (STAGE2.model_file, STAGE2_CONFIG_FILE)
        or path.split("/")[0] == STAGE2.backup_dir
        or path == STAGE2.logs_dir or path.startswith(STAGE2.logs_dir + "/")
        or (path.startswith("checkpoints/stage2_epoch_"))
    )


def _config_differences(config, path):
    """Dotted keys in which the YAML file `path` differs from `config` (None: unreadable)."""
    try:
        saved = yaml.safe_load(pathlib.Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None

    def flat(value, prefix=""):
        if isinstance(value, dict):
            items = {}
            for key, inner in value.items():
                items.update(flat(inner, f"{prefix}{key}."))
            return items
        return {prefix[:-1]: value}

    new, old = flat(config_to_dict(config)), flat(saved if isinstance(saved, dict) else {})
    return sorted(key for key in new.keys() | old.keys() if new.get(key) != old.get(key))


def plan_stages(config, out_dir, stages, overwrite):
    """The stages to run into `out_dir`: `(1, 2)` after a finished stage 1 goes on with 2.

    Raises:
        OutputDirectoryError: `out_dir` holds a finished stage 1 of another
            configuration (its config.yaml differs), which stage 2 would build on.
    """
    out_dir = pathlib.Path(out_dir)
    stages = tuple(stages)
    if stages != (1, 2) or overwrite or not stage_finished(out_dir, STAGE1):
        return stages
    if stage_finished(out_dir, STAGE2):
        return stages  # refused by run_stage1 without --overwrite
    differences = _config_differences(config, out_dir / CONFIG_FILE)
    if differences:
        raise OutputDirectoryError(
            f"{out_dir} holds a finished stage 1 of another configuration ({out_dir / CONFIG_FILE} "
            f"differs in {', '.join(differences[:5])}). Choose another output directory or pass "
            "--overwrite to replace that run."
        )
    return (2,)


@contextlib.contextmanager
def run_directory(config, out_dir, overwrite, layout):
    """Yields the directory to train a run into, starting with the stage `layout`.

    `out_dir` itself, unless it holds a finished run of that stage and
    `overwrite`: then a hidden sibling with the files the new run keeps
    (linked), swapped into place when the block has finished. A failure
    leaves `out_dir` untouched (and the sibling, to resume from). A full
    disk becomes `OutputWriteError`.
    """
    out_dir = pathlib.Path(out_dir)
    scratch = scratch_directory(out_dir)
    try:
        if not check_output_directory(out_dir, overwrite, layout):
            yield out_dir
            return
        resumable = any((scratch / stage.backup_dir).exists() for stage in (STAGE1, STAGE2))
        if scratch.exists() and (
            not resumable or _config_differences(config, scratch / CONFIG_FILE)
        ):
            # Nothing to resume, or an interrupted overwrite with another configuration.
            remove_path(scratch)
        try:
            with replacing_directory(out_dir, _replaced_by(layout), resume=True) as work:
                yield work
        except BaseException:
            if not any((scratch / stage.backup_dir).exists() for stage in (STAGE1, STAGE2)):
                remove_path(scratch)  # nothing trained yet: nothing to resume
            raise
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        kept = f"; the new run so far is in {scratch}" if scratch.exists() else ""
        raise OutputWriteError(
            f"{describe_write_error(error, error.filename or out_dir)}. Nothing finished was "
            f"lost: {out_dir} keeps its previous results{kept}. Free some space and run the "
            "same command again: training resumes from its last finished epoch."
        ) from error


def save_atomically(model, path):
    """Saves to a temporary file next to `path`, syncs it, then renames it into place."""
    return save_model_atomically(model, path)


def write_json_atomically(value, path):
    write_text_atomically(json.dumps(value, indent=2, sort_keys=True) + "\n", path)


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


def _write_config(config, out_dir, name=CONFIG_FILE):
    out_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    write_text_atomically(text, out_dir / name)


def _write_stage2_config(config, out_dir):
    """config.yaml for a new directory; an existing one (stage 1's run) is kept, and stage 2's
    configuration goes beside it when it differs."""
    if not (out_dir / CONFIG_FILE).exists():
        _write_config(config, out_dir)
    elif _config_differences(config, out_dir / CONFIG_FILE):
        _write_config(config, out_dir, STAGE2_CONFIG_FILE)


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
        `(model, metrics)`: the trained `MultiBranchTraining` (its `network`
        is the `MultiBranchModel` saved as stage1.keras; the checkpoints hold
        the training model) and the nested dict written to `metrics.json`
        (`{"stage1": {...}}`).

    Under `train.distribution: multi_worker` every worker calls this with
    the same arguments; only the chief writes into `out_dir`.
    """
    with worker_run_directory(config, out_dir, overwrite, STAGE1) as work:
        return train_stage1(config, work, verbose, callbacks)


@contextlib.contextmanager
def worker_run_directory(config, out_dir, overwrite, layout):
    """`run_directory` on the chief; on other multi-worker workers a scratch directory.

    Creates the strategy first: a multi-worker one must exist before
    TensorFlow runs anything. A non-chief worker refuses what the chief
    refuses (so that it does not wait for a chief that stopped), and starts
    from the chief's backup and stage-1 model, which assumes a filesystem
    that all workers share; its scratch directory is deleted at the end.
    """
    strategy = make_strategy(config.train.distribution)
    out_dir = pathlib.Path(out_dir)
    with worker_output_dir(out_dir, strategy) as write_dir:
        if write_dir == out_dir:
            with run_directory(config, out_dir, overwrite, layout) as work:
                yield work
            return
        if not overwrite:
            check_output_directory(out_dir, False, layout)
        for source in (scratch_directory(out_dir), out_dir):
            if any((source / stage.backup_dir).is_dir() for stage in (STAGE1, STAGE2)):
                for stage in (STAGE1, STAGE2):
                    if (source / stage.backup_dir).is_dir():
                        shutil.copytree(source / stage.backup_dir, write_dir / stage.backup_dir)
                break
        if layout == STAGE2 and (out_dir / STAGE1.model_file).is_file():
            shutil.copy2(out_dir / STAGE1.model_file, write_dir / STAGE1.model_file)
        yield write_dir


def run_stages(config, out_dir, stages=(1, 2), init=None, overwrite=False, verbose="auto",
               callbacks=()):
    """Runs `stages` (`(1,)`, `(2,)` or `(1, 2)`) into `out_dir` as one run.

    With `overwrite`, a finished run is replaced only once every stage has
    finished (see `run_directory`). Returns the last stage's `(model, metrics)`.
    """
    stages = tuple(stages)
    with worker_run_directory(
        config, out_dir, overwrite, STAGE1 if 1 in stages else STAGE2
    ) as work:
        if 1 in stages:
            result = train_stage1(config, work, verbose, callbacks)
        if 2 in stages:
            result = train_stage2(config, work, init, verbose, callbacks)
        return result


def train_stage1(config, out_dir, verbose="auto", callbacks=()):
    """`run_stage1`'s training, in `out_dir` as it is (no overwrite check)."""
    out_dir = pathlib.Path(out_dir)
    _write_config(config, out_dir)
    keras.utils.set_random_seed(config.train.seed)
    train_faces, test_faces = load_data(config)
    start_epoch = completed_epochs(out_dir, STAGE1)
    dataset, steps_per_epoch = training_pairs(config, train_faces, start_epoch, config.train.seed)
    strategy = make_strategy(config.train.distribution)
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
    save_atomically(model.network, out_dir / STAGE1.model_file)
    # Held-out metrics come from the saved file, as `catface evaluate` and serving load
    # it: a model trained under mixed precision is saved without its dtype policy and
    # loads in float32, and `predict` under MultiWorkerMirroredStrategy would only see
    # this worker's share of the faces.
    metrics = {
        "stage1": _evaluate_heldout(
            load_model(out_dir / STAGE1.model_file), test_faces, config.evaluation,
            config.degrade,
        )
    }
    write_json_atomically(metrics, out_dir / METRICS_FILE)
    shutil.rmtree(out_dir / STAGE1.backup_dir, ignore_errors=True)
    return model, metrics


def build_stage2_model(config, stage1, num_classes):
    """The stage-2 training model: the `FusionModel` of `config.stage2` on top of `stage1`."""
    stage2, loss = config.stage2, config.loss
    network = FusionModel(
        stage1,
        fusion=stage2.fusion,
        fusion_options={key: getattr(stage2, key) for key in DEFAULT_FUSION_OPTIONS},
        embedding_dim=stage2.embedding_dim,
        dropout=stage2.dropout,
    )
    return FusionTraining(
        network,
        num_classes=num_classes,
        adaface=adaface_arguments(loss),
        partial_fc_sample_rate=loss.partial_fc_sample_rate,
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


def load_stage1_model(path, role="stage 2's start"):
    """Loads the stage-1 network that stage 2 (or a student, as its teacher) starts from."""
    if role == "teacher" and not pathlib.Path(path).is_file():
        raise MissingStage1Error(
            f"loss.teacher names {path}, which does not exist. Train the teacher first "
            "(a stage-1 run with loss.train_on: hq) and give its stage1.keras."
        )
    check_stage1_file(path)
    try:
        model = load_model(path)
    except ValueError as error:
        raise MissingStage1Error(str(error)) from None
    if not isinstance(model, MultiBranchModel):
        raise MissingStage1Error(
            f"{path} holds a {type(model).__name__}, not a stage-1 MultiBranchModel."
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
        `(model, metrics)`: the trained `FusionTraining` (its `network`, a
        `FusionModel`, is saved as stage2.keras) and the dict written to
        `metrics.json`, `{"stage1": {...}, "stage2": {...}}`, both stages
        evaluated on the same held-out pairs.
    """
    with worker_run_directory(config, out_dir, overwrite, STAGE2) as work:
        return train_stage2(config, work, init, verbose, callbacks)


def train_stage2(config, out_dir, init=None, verbose="auto", callbacks=()):
    """`run_stage2`'s training, in `out_dir` as it is (no overwrite check)."""
    out_dir = pathlib.Path(out_dir)
    init = pathlib.Path(init) if init is not None else out_dir / STAGE1.model_file
    stage2 = config.stage2
    stage_config = config.replace("train", epochs=stage2.epochs)
    check_stage1_file(init)  # before reading the dataset, which can take a while
    train_faces, test_faces = load_data(config)
    num_classes = train_faces.num_classes
    _write_stage2_config(config, out_dir)
    # Another seed than stage 1: stage 2 sees fresh degradations of the same faces.
    seed = config.train.seed + 1
    keras.utils.set_random_seed(seed)
    start_epoch = completed_epochs(out_dir, STAGE2)
    dataset, steps_per_epoch = training_pairs(stage_config, train_faces, start_epoch, seed)
    optimizer_config = dataclasses.replace(
        config.optimizer, learning_rate=stage2.learning_rate, lr_milestones=stage2.lr_milestones
    )
    strategy = make_strategy(config.train.distribution)
    with dtype_policy(config.train.mixed_precision), strategy.scope():
        stage1 = load_stage1_model(init)
        model = build_stage2_model(config, stage1, num_classes)
        optimizer = make_optimizer(optimizer_config, steps_per_epoch)
        exclude_batch_norm_from_weight_decay(optimizer, model)
        model.compile(optimizer=optimizer)
        build_for_strategy(model, strategy)
    # Before training, so that a kill during stage 2 does not lose them.
    stage1_metrics = _stage1_metrics(out_dir, init, test_faces, config)
    fit_stage(
        model, dataset, stage2.epochs, start_epoch, steps_per_epoch, out_dir, STAGE2, verbose,
        [*train_faces.callbacks, *callbacks],
    )
    save_atomically(model.network, out_dir / STAGE2.model_file)
    metrics = {
        "stage1": stage1_metrics,
        "stage2": _evaluate_heldout(
            load_model(out_dir / STAGE2.model_file), test_faces, config.evaluation,
            config.degrade,
        ),
    }
    write_json_atomically(metrics, out_dir / METRICS_FILE)
    shutil.rmtree(out_dir / STAGE2.backup_dir, ignore_errors=True)
    return model, metrics


def _stage1_metrics(out_dir, init, test_faces, config):
    """Stage 1's held-out metrics: reused from its own run in `out_dir`, else computed.

    Saved metrics are reused only when they hold every condition (a run of an
    older version used other names) or record a skipped evaluation.
    """
    metrics_path = out_dir / METRICS_FILE
    if init.resolve() == (out_dir / STAGE1.model_file).resolve() and metrics_path.exists():
        saved = json.loads(metrics_path.read_text()).get("stage1", {})
        if "skipped" in saved or set(saved.get("verification", {})) == set(CONDITIONS):
            return saved
    return _evaluate_heldout(load_model(init), test_faces, config.evaluation, config.degrade)
