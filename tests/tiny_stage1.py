"""A stage-1 network, its training model and a paired HQ/LQ batch small enough for unit tests."""

import inspect

import numpy as np

from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.stage1_training import MultiBranchTraining

SIZE = 32
TINY = {"stage_blocks": [1, 1, 1, 1], "stage_widths": [8, 8, 16, 16]}
ARCHITECTURE_ARGUMENTS = set(inspect.signature(MultiBranchModel).parameters) - {"kwargs"}


def tiny_network(**kwargs):
    """A tiny `MultiBranchModel`; `kwargs` override its architecture."""
    defaults = dict(backbone=TINY, image_size=SIZE, embedding_dim=12)
    return MultiBranchModel(**{**defaults, **kwargs})


def tiny_model(num_classes=6, **kwargs):
    """A `MultiBranchTraining` around a tiny network.

    Architecture arguments in `kwargs` go to the network, the rest to the training model.
    """
    architecture = {key: kwargs.pop(key) for key in list(kwargs) if key in ARCHITECTURE_ARGUMENTS}
    return MultiBranchTraining(tiny_network(**architecture), num_classes=num_classes, **kwargs)


def paired_batch(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    hq = rng.uniform(0, 255, (batch, SIZE, SIZE, 3)).astype("float32")
    lq = np.clip(hq + rng.normal(0, 40, hq.shape), 0, 255).astype("float32")
    targets = {
        "identity": rng.integers(0, 6, batch).astype("int32"),
        "attributes": rng.integers(0, 2, (batch, 5)).astype("int32"),
    }
    return {"hq": hq, "lq": lq}, targets
