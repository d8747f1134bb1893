"""A stage-1 model and a paired HQ/LQ batch small enough for unit tests."""

import numpy as np

from catface_keras.models.multibranch import MultiBranchModel

SIZE = 32
TINY = {"stage_blocks": [1, 1, 1, 1], "stage_widths": [8, 8, 16, 16]}


def tiny_model(**kwargs):
    defaults = dict(num_classes=6, backbone=TINY, image_size=SIZE, embedding_dim=12)
    defaults.update(kwargs)
    return MultiBranchModel(**defaults)


def paired_batch(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    hq = rng.uniform(0, 255, (batch, SIZE, SIZE, 3)).astype("float32")
    lq = np.clip(hq + rng.normal(0, 40, hq.shape), 0, 255).astype("float32")
    targets = {
        "identity": rng.integers(0, 6, batch).astype("int32"),
        "attributes": rng.integers(0, 2, (batch, 5)).astype("int32"),
    }
    return {"hq": hq, "lq": lq}, targets
