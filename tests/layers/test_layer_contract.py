"""Every custom layer through the one harness (`layer_test_utils.run_layer_test`).

Each case declares constructor arguments, inputs, the output shape and the
weight counts; the layer's own math is tested beside it (`test_<layer>.py`).
"""

import numpy as np
import pytest
from layer_test_utils import random_inputs, run_layer_test

from catface_keras.layers.adaface import AdaFace
from catface_keras.layers.batch_norm import FusedBatchNormalization
from catface_keras.layers.caf import CAF, ChannelGroupAttention
from catface_keras.layers.catf import CATF
from catface_keras.layers.cbam import CBAM
from catface_keras.layers.cross_attention import CrossAttentionFusion, DualCrossAttention
from catface_keras.layers.ffm import FFMFusion
from catface_keras.layers.fusion_baselines import AddFusion, ConcatFusion, SEFusion
from catface_keras.layers.mffnl import MFFNL, MDConv
from catface_keras.layers.perceptibility import PerceptibilityAttention
from catface_keras.layers.prelu import PReLU
from catface_keras.layers.self_attention import SelfAttention2D

MAP = (2, 3, 4, 8)  # (batch, H, W, C)
TWO_MAPS = random_inputs(MAP, MAP)
EMBEDDINGS_AND_LABELS = (random_inputs((4, 6)), np.array([0, 2, 1, 2], "int32"))

# (layer, init kwargs, inputs, output shape(s), trainable and non-trainable weight counts,
#  options: attention maps and logits stay float32 under mixed precision.)
CASES = {
    "AdaFace": (AdaFace, {"num_classes": 3}, EMBEDDINGS_AND_LABELS, (4, 3), 1, 2,
                {"float32_outputs": True}),
    "FusedBatchNormalization": (FusedBatchNormalization, {"momentum": 0.9},
                                random_inputs(MAP), MAP, 2, 2, {}),
    "CAF": (CAF, {"groups": 4}, random_inputs(MAP), MAP, 6, 0, {}),
    "ChannelGroupAttention": (ChannelGroupAttention, {"groups": 2}, random_inputs(MAP), MAP,
                              6, 0, {"float32_outputs": (1,)}),
    # 20 dual cross-attention + 2 x 13 MFFNL + 6 CAF; 2 x 6 MFFNL batch-norm statistics.
    "CATF": (CATF, {"num_heads": 2, "expansion": 2, "groups": 4}, TWO_MAPS, (2, 3, 4, 16),
             52, 12, {}),
    "CBAM": (CBAM, {"reduction": 4, "spatial_kernel_size": 3}, random_inputs(MAP),
             (MAP, (2, 8), (2, 3, 4, 1)), 5, 0, {"float32_outputs": (1, 2)}),
    # Per direction: query, key, value, output projections (kernel + bias) and a LayerNorm.
    "DualCrossAttention": (DualCrossAttention, {"num_heads": 2}, TWO_MAPS, (MAP, MAP),
                           20, 0, {}),
    "CrossAttentionFusion": (CrossAttentionFusion, {"num_heads": 2}, TWO_MAPS, MAP, 10, 0, {}),
    "FFMFusion": (FFMFusion, {"num_heads": 2}, TWO_MAPS, MAP, 27, 2, {}),
    "ConcatFusion": (ConcatFusion, {}, TWO_MAPS, (2, 3, 4, 16), 0, 0, {}),
    "AddFusion": (AddFusion, {}, TWO_MAPS, MAP, 0, 0, {}),
    "SEFusion": (SEFusion, {"reduction": 4}, TWO_MAPS, (2, 3, 4, 16), 4, 0, {}),
    # One 3x3 depthwise kernel; 5x5 and 7x7 each factorised into two (1 x k, k x 1).
    "MDConv": (MDConv, {"kernel_sizes": (3, 5, 7)}, random_inputs((2, 6, 6, 6)), (2, 6, 6, 6),
               5, 0, {}),
    "MFFNL": (MFFNL, {"expansion": 2}, random_inputs((2, 4, 5, 6)), (2, 4, 5, 6), 13, 6, {}),
    "PerceptibilityAttention": (PerceptibilityAttention, {"reduction": 4}, random_inputs(MAP),
                                (MAP, (2, 3, 4, 1)), 4, 0, {}),
    # Slopes of 1, not the default 0: from 0 an MSE step towards 0 leaves them at 0.
    "PReLU": (PReLU, {"shared_axes": [1, 2], "alpha_initializer": "ones"}, random_inputs(MAP),
              MAP, 1, 0, {}),
    "SelfAttention2D": (SelfAttention2D, {"key_dim": 4, "use_bias": True},
                        random_inputs((2, 3, 5, 8)), ((2, 3, 5, 8), (2, 15, 15), (2, 15, 8)),
                        6, 0, {"float32_outputs": (1,)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_contract(name):
    layer_cls, kwargs, inputs, shape, trainable, non_trainable, options = CASES[name]
    run_layer_test(layer_cls, kwargs, inputs, shape, trainable, non_trainable, **options)
