"""CATFace models. Importing this package registers them for `keras.saving.load_model`.

Inference models hold the architecture only and are what every command loads
and exports: `MultiBranchModel` (stage 1) and `FusionModel` (stage 2).
Training models compose one and own the training step: `MultiBranchTraining`
and `FusionTraining`.
"""

from catface_keras.models.fusion import FUSION_KINDS, FusionModel
from catface_keras.models.loading import load_model
from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.stage1_training import MultiBranchTraining
from catface_keras.models.stage2_training import FusionTraining
