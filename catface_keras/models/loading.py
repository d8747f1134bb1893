"""`load_model`: a saved CATFace model, ready for inference."""

import importlib
import pathlib
import pkgutil

import keras


def load_model(path, compile=False, allow_embedder=False):
    """Loads a `.keras` file written by training (a `MultiBranchModel` or `FusionModel`).

    Every module of `catface_keras.models` is imported first: each registers its classes
    (and the layers they use) for deserialisation.

    Args:
        path: the `.keras` file.
        compile: restore the training configuration too (default: inference only).
        allow_embedder: also accept an `IResNetEmbedder` written by `catface
            import-weights` (embedding only, no attribute outputs).

    Raises:
        ValueError: `path` is not a file, is truncated or damaged, or holds a model of
            another kind.
    """
    import catface_keras.models as models
    from catface_keras.atomic_files import check_keras_archive
    from catface_keras.backbones.iresnet import IResNetEmbedder
    from catface_keras.models.fusion import FusionModel
    from catface_keras.models.multibranch import MultiBranchModel

    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"model {path} does not exist")
    check_keras_archive(path)  # a truncated file would be reported as "File not found"
    for module in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"{models.__name__}.{module.name}")
    model = keras.saving.load_model(path, compile=compile)
    kinds = (MultiBranchModel, FusionModel) + ((IResNetEmbedder,) if allow_embedder else ())
    if not isinstance(model, kinds):
        expected = "a CATFace stage-1 (MultiBranchModel) or stage-2 (FusionModel) model"
        if allow_embedder:
            expected += " or an imported IResNetEmbedder"
        raise ValueError(f"{path} holds a {type(model).__name__}, not {expected}")
    return model
