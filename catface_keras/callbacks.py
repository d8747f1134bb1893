"""Keras callbacks that training runs add to `fit`: resumable backups and per-epoch checkpoints.

Both write atomically (`catface_keras.atomic_files`), so that a process killed
at any moment leaves the previous epoch's files, never truncated ones.
"""

import json
import pathlib

import keras
import numpy as np

from catface_keras.atomic_files import (
    remove_path,
    save_model_atomically,
    write_atomically,
    write_text_atomically,
)
from catface_keras.run_directory import BACKUP_METADATA, BackupError, read_backup_metadata


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
