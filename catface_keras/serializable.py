"""Registers every class the package saves in `.keras` files, as `import keras_hub` does.

Importing this module imports each module that holds a
`@keras.saving.register_keras_serializable(package="catface")` class (layers, backbones,
models, the degradation layer, the optimizer), so that `keras.models.load_model` reads every
file the package writes: stage 1, stage 2, the per-epoch training checkpoints and imported
backbones. `import catface_keras` imports it (see the package docstring for the one
exception, the `catface` command); a test checks that no registering module is missing here.
"""

from catface_keras import distribution  # noqa: F401  CrossReplicaClipSGD
from catface_keras.backbones import iresnet  # noqa: F401
from catface_keras.degrade import layer  # noqa: F401
from catface_keras.layers import (  # noqa: F401
    adaface,
    batch_norm,
    caf,
    catf,
    cbam,
    cross_attention,
    ffm,
    fusion_baselines,
    mffnl,
    partial_fc,
    perceptibility,
    prelu,
    self_attention,
)
from catface_keras.models import fusion, multibranch, stage1_training, stage2_training  # noqa: F401
