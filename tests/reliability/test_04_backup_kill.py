"""Item 4: a kill inside the epoch-end backup write; truncated checkpoints."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from catface_keras.atomic_files import check_keras_archive
from catface_keras.config import config_from_dict
from catface_keras.callbacks import EpochBackup, EpochCheckpoint
from catface_keras.run_directory import BackupError
from catface_keras.trainer import run_stage1

from reliability.helpers import leftovers
from tiny_models import TINY_EXPERIMENT as TINY

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]

# Trains in a child process that SIGKILLs itself at a chosen point of the backup at the end of
# epoch 2: halfway through writing the weights (the file cut to half its size first), or once
# the epoch's backup is complete but before the metadata that commits it is written.
KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    import keras
    from catface_keras import callbacks, trainer
    from catface_keras.config import config_from_dict

    point = sys.argv[3]
    original_save, original_commit = keras.Model.save_weights, callbacks.write_text_atomically
    calls = []

    def save_weights(self, filepath, *args, **kwargs):
        original_save(self, filepath, *args, **kwargs)
        calls.append(filepath)
        if point == "inside-weights-write" and len(calls) == 2:
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as handle:
                handle.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    def commit(text, path):
        if point == "before-commit" and '"epoch": 2' in text:
            os.kill(os.getpid(), signal.SIGKILL)
        return original_commit(text, path)

    keras.Model.save_weights = save_weights
    callbacks.write_text_atomically = commit
    config = config_from_dict(json.loads(sys.argv[2]))
    trainer.run_stage1(config, sys.argv[1], verbose=0)
""")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model, _ = run_stage1(config_from_dict(TINY), tmp_path_factory.mktemp("straight"), verbose=0)
    return model.get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["inside-weights-write", "before-commit"])
def test_killed_backup_write_resumes_to_the_same_weights(point, uninterrupted, tmp_path):
    """Tolerance 1e-5 absolute, as for an in-process interruption (same float32 ops)."""
    killed = tmp_path / "killed"
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2"}
    child = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(killed), json.dumps(TINY), point],
        env=environment, capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == -9, child.stderr[-3000:]
    assert not (killed / "stage1.keras").exists()
    # Before: backup/latest.weights.h5 was the half-written file, and every resume failed
    # with "OSError: Unable to synchronously open file".
    resumed, _ = run_stage1(config_from_dict(TINY), killed, verbose=0)
    for expected, got in zip(uninterrupted, resumed.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sorted(path.name for path in (killed / "checkpoints").iterdir()) == [
        "epoch_001.keras", "epoch_002.keras"]
    assert not (killed / "backup").exists() and leftovers(killed) == []


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_checkpoint_cut_short_leaves_no_truncated_file(tmp_path, monkeypatch):
    model = tiny_model()
    checkpoints = tmp_path / "checkpoints"
    callback = EpochCheckpoint(checkpoints / "epoch_{epoch:03d}.keras")
    callback.set_model(model)
    callback.on_epoch_end(0)
    first = (checkpoints / "epoch_001.keras").read_bytes()
    original = keras.Model.save

    def save_half(self, filepath, *args, **kwargs):
        original(self, filepath, *args, **kwargs)
        with open(filepath, "r+b") as handle:
            handle.truncate(os.path.getsize(filepath) // 2)
        raise KeyboardInterrupt("killed while writing the checkpoint")

    monkeypatch.setattr(keras.Model, "save", save_half)
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(1)
    # Before (keras.callbacks.ModelCheckpoint): epoch_002.keras stayed, truncated, forever.
    assert sorted(path.name for path in checkpoints.iterdir()) == ["epoch_001.keras"]
    assert (checkpoints / "epoch_001.keras").read_bytes() == first


def test_truncated_files_from_older_versions_are_named(tmp_path):
    model = tiny_model()
    model.save(tmp_path / "epoch_003.keras")
    data = (tmp_path / "epoch_003.keras").read_bytes()
    (tmp_path / "epoch_003.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"epoch_003.keras is not a complete .keras model file"):
        check_keras_archive(tmp_path / "epoch_003.keras")
    # An old BackupAndRestore backup, cut short in place.
    backup = tmp_path / "backup"
    backup.mkdir()
    model.save_weights(backup / "latest.weights.h5")
    weights = (backup / "latest.weights.h5").read_bytes()
    (backup / "latest.weights.h5").write_bytes(weights[: len(weights) // 2])
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    callback = EpochBackup(backup)
    callback.set_model(model)
    with pytest.raises(BackupError, match=r"latest.weights.h5.*incomplete or damaged.*Delete"):
        callback.on_train_begin()
    assert (backup / "latest.weights.h5").read_bytes() == weights[: len(weights) // 2]
