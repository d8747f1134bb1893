"""Stage-1 training run: data, strategy, model, optimiser, callbacks, evaluation.

`run_stage1(config, out_dir)` is what `catface demo` and `catface train`
call. An output directory holds:

    stage1.keras          the trained model (written once training ends)
    metrics.json          held-out evaluation
    config.yaml           the configuration the run used
    checkpoints/          one `.keras` model per epoch
    logs/                 TensorBoard
    backup/               `keras.callbacks.BackupAndRestore` state while running

A run that was killed resumes from `backup/` when started again with the same
directory; a directory that already holds a finished run is refused unless
`overwrite=True`.
"""

import contextlib
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
from catface_keras.data.pairs import paired_dataset
from catface_keras.data.synthetic import synthetic_splits
from catface_keras.degrade import degrade
from catface_keras.evaluation.heldout import evaluate_heldout
from catface_keras.models.multibranch import MultiBranchModel

MODEL_FILE = "stage1.keras"
METRICS_FILE = "metrics.json"
BACKUP_DIR = "backup"


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


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class OutputDirectoryError(RuntimeError):
    """The output directory holds a finished run that would be overwritten."""


def make_strategy(distribution):
    """The `tf.distribute` strategy named by `train.distribution`."""
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        # Reads the cluster from the TF_CONFIG environment variable.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if distribution == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    raise ValueError(
        "`distribution` must be one of 'auto', 'none', 'mirrored', 'multi_worker'. "
        f"Received: distribution={distribution!r}"
    )


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
    return keras.optimizers.SGD(
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
    model_config, loss = config.model, config.loss
    return MultiBranchModel(
        num_classes=num_classes,
        backbone=model_config.backbone,
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


def load_data(config):
    """Train and held-out faces for the configured source."""
    data = config.data
    if data.source != "synthetic":
        raise ValueError(f"Unknown data source. Received: data.source={data.source!r}")
    return synthetic_splits(
        data.num_train_identities,
        data.num_test_identities,
        data.images_per_identity,
        image_size=data.image_size,
        seed=data.seed,
        test_images_per_identity=data.test_images_per_identity,
    )


def completed_epochs(out_dir):
    """Epochs finished by an interrupted run in `out_dir` (0 if none).

    Reads the metadata file that `keras.callbacks.BackupAndRestore` writes,
    so that the data stream can restart at the same epoch as the weights.
    """
    metadata = pathlib.Path(out_dir, BACKUP_DIR, "training_metadata.json")
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def check_output_directory(out_dir, overwrite):
    """Refuses to train over a finished run unless `overwrite`."""
    out_dir = pathlib.Path(out_dir)
    finished = out_dir / MODEL_FILE
    if finished.exists() and not (out_dir / BACKUP_DIR).exists():
        if not overwrite:
            raise OutputDirectoryError(
                f"{out_dir} already holds a finished run ({finished}). Choose another "
                "output directory or pass --overwrite to replace it."
            )
        for name in (MODEL_FILE, METRICS_FILE, "checkpoints", "logs"):
            path = out_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy for the block (None: unchanged)."""
    previous = keras.config.dtype_policy()
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
    """
    out_dir = pathlib.Path(out_dir)
    check_output_directory(out_dir, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    train = config.train
    keras.utils.set_random_seed(train.seed)
    train_faces, test_faces = load_data(config)
    num_classes = int(train_faces.identities.max()) + 1
    steps_per_epoch = len(train_faces.images) // train.batch_size
    start_epoch = completed_epochs(out_dir)
    dataset = paired_dataset(
        train_faces.images,
        train_faces.identities,
        train_faces.attributes,
        batch_size=train.batch_size,
        degrade_fn=degrade,
        seed=train.seed,
        start_epoch=start_epoch,
        num_epochs=max(train.epochs - start_epoch, 0),
    )
    strategy = make_strategy(train.distribution)
    with dtype_policy(train.mixed_precision), strategy.scope():
        model = build_stage1_model(config, num_classes)
        optimizer = make_optimizer(config.optimizer, steps_per_epoch)
        exclude_batch_norm_from_weight_decay(optimizer, model)
        model.compile(optimizer=optimizer)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(
        dataset,
        epochs=train.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=[
            # Kept until the model and metrics are written (deleted below), so
            # that a run killed during evaluation does not train again.
            keras.callbacks.BackupAndRestore(str(out_dir / BACKUP_DIR), delete_checkpoint=False),
            RandomStateBackup(out_dir / BACKUP_DIR / "random_state.npz"),
            keras.callbacks.ModelCheckpoint(str(out_dir / "checkpoints" / "epoch_{epoch:03d}.keras")),
            keras.callbacks.TensorBoard(str(out_dir / "logs")),
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
            f"{out_dir / BACKUP_DIR} holds the last finished epoch. Lower "
            "optimizer.learning_rate or optimizer.global_clipnorm and start again."
        )
    save_atomically(model, out_dir / MODEL_FILE)
    metrics = {"stage1": evaluate_heldout(model, test_faces, config.evaluation)}
    write_json_atomically(metrics, out_dir / METRICS_FILE)
    shutil.rmtree(out_dir / BACKUP_DIR, ignore_errors=True)
    return model, metrics
