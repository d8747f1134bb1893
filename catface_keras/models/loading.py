"""`load_model`: a saved CATFace model, ready for inference."""

import pathlib

import keras

from catface_keras.atomic_files import check_keras_archive
from catface_keras.backbones.iresnet import IResNetEmbedder
from catface_keras.models.fusion import FusionModel
from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.paired import PairedTraining
# Registers the training models, so that a training file loads too.
from catface_keras.models import stage1_training, stage2_training  # noqa: F401


def load_model(path, compile=False, allow_embedder=False):
    """The inference model in a `.keras` file (see `load_model_and_class_centres`)."""
    return load_model_and_class_centres(path, compile, allow_embedder)[0]


def load_model_and_class_centres(path, compile=False, allow_embedder=False):
    """The inference model in a `.keras` file and, for a training file, its class centres.

    A training model's file (`MultiBranchTraining`, `FusionTraining`: the
    per-epoch checkpoints) gives the network it trains and the `(C, D)` class
    centres of its margin head (the recognizability index's prototypes); an
    inference file (stage1.keras, stage2.keras) gives None for them. Files
    saved before the inference/training split load with their training
    arguments dropped.

    Args:
        path: the `.keras` file.
        compile: restore the training configuration too (default: inference only).
        allow_embedder: also accept an `IResNetEmbedder` written by `catface
            import-weights` (embedding only, no attribute outputs).

    Returns:
        `(model, class_centres)`: a `MultiBranchModel`, `FusionModel` (or
        `IResNetEmbedder`), and a `(C, D)` array or None.

    Raises:
        ValueError: `path` is not a file, is truncated or damaged, or holds a model of
            another kind.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"model {path} does not exist")
    check_keras_archive(path)  # a truncated file would be reported as "File not found"
    model = keras.saving.load_model(path, compile=compile)
    class_centres = None
    if isinstance(model, PairedTraining):
        model, class_centres = model.network, model.class_centres()
    kinds = (MultiBranchModel, FusionModel) + ((IResNetEmbedder,) if allow_embedder else ())
    if not isinstance(model, kinds):
        expected = "a CATFace stage-1 (MultiBranchModel) or stage-2 (FusionModel) model"
        if allow_embedder:
            expected += " or an imported IResNetEmbedder"
        raise ValueError(f"{path} holds a {type(model).__name__}, not {expected}")
    return model, class_centres
