"""The untrained stage-1 model the visualization tests look at."""

import keras

from catface_keras.models.multibranch import MultiBranchModel

SIZE = 32


def tiny_stage1_model():
    keras.utils.set_random_seed(0)
    return MultiBranchModel(backbone="ir_tiny", image_size=SIZE, embedding_dim=16)
