"""CATFace models. Importing this package registers them for `keras.saving.load_model`."""

from catface_keras.models.fusion import FUSION_KINDS, FusionModel
from catface_keras.models.loading import load_model
from catface_keras.models.multibranch import MultiBranchModel
