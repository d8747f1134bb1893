"""The tiny models, batches and experiment sizes every test builds on (one home for all).

- `tiny_network(**kwargs)`: an in-memory stage-1 network (`MultiBranchModel`) with a
  narrow custom trunk (12-d); `tiny_model(**kwargs)`: its training model
  (`MultiBranchTraining`, 6 classes), for unit tests that change constructor arguments.
- `tiny_stage1_model(image_size=32)`: the untrained `ir_tiny` stage-1 network (16-d,
  seed 0) that the command tests load; `conftest.py` saves it once per session
  (`tiny_model_path`, `tiny_model`), and its training model with 8 classes, as a
  checkpoint is (`tiny_training_path`).
- `paired_batch`: an HQ/LQ batch for `tiny_model`.
- `TINY_EXPERIMENT`: the sizes of a stage-1 run of a few seconds (config dict).
- `StopAfterFirstEpoch`: a callback that kills a run after its first epoch.
"""

import inspect

import keras
import numpy as np

from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.stage1_training import MultiBranchTraining

SIZE = 32
TINY_BACKBONE = {"stage_blocks": [1, 1, 1, 1], "stage_widths": [8, 8, 16, 16]}

TINY_EXPERIMENT = {
    "data": {
        "num_train_identities": 8,
        "num_test_identities": 12,
        "images_per_identity": 4,
        "test_images_per_identity": 6,
        "image_size": SIZE,
    },
    "model": {"backbone": "ir_tiny", "embedding_dim": 16, "dropout": 0.1},
    "train": {"epochs": 2, "batch_size": 8, "distribution": "none"},
    "evaluation": {"num_pairs": 150, "batch_size": 32},
}


ARCHITECTURE_ARGUMENTS = set(inspect.signature(MultiBranchModel).parameters) - {"kwargs"}


def tiny_network(**kwargs):
    """A `MultiBranchModel` on `TINY_BACKBONE`; `kwargs` override its arguments."""
    defaults = dict(backbone=TINY_BACKBONE, image_size=SIZE, embedding_dim=12)
    return MultiBranchModel(**{**defaults, **kwargs})


def tiny_model(num_classes=6, **kwargs):
    """A `MultiBranchTraining` around a `tiny_network`: architecture arguments in
    `kwargs` go to the network, the others to the training model."""
    architecture = {key: kwargs.pop(key) for key in list(kwargs) if key in ARCHITECTURE_ARGUMENTS}
    return MultiBranchTraining(tiny_network(**architecture), num_classes=num_classes, **kwargs)


def tiny_stage1_model(image_size=SIZE):
    """The untrained `ir_tiny` stage-1 network of the command tests (seed 0)."""
    keras.utils.set_random_seed(0)
    return MultiBranchModel(backbone="ir_tiny", image_size=image_size, embedding_dim=16)


def paired_batch(batch=4, seed=0):
    """`({"hq", "lq"}, {"identity", "attributes"})` for `tiny_model`: LQ is HQ plus noise."""
    rng = np.random.default_rng(seed)
    hq = rng.uniform(0, 255, (batch, SIZE, SIZE, 3)).astype("float32")
    lq = np.clip(hq + rng.normal(0, 40, hq.shape), 0, 255).astype("float32")
    targets = {
        "identity": rng.integers(0, 6, batch).astype("int32"),
        "attributes": rng.integers(0, 2, (batch, 5)).astype("int32"),
    }
    return {"hq": hq, "lq": lq}, targets


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` at the end of epoch 1: a run killed there."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("simulated kill after epoch 1")
