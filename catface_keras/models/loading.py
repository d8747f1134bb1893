"""`load_model`: a saved stage-1 or stage-2 CATFace model, ready for inference."""

import importlib
import pathlib
import pkgutil

import keras


def load_model(path, compile=False):
    """Loads a `.keras` file written by training (a `MultiBranchModel` or `FusionModel`).

    Every module of `catface_keras.models` is imported first: each registers its classes
    (and the layers they use) for deserialisation.

    Args:
        path: the `.keras` file.
        compile: restore the training configuration too (default: inference only).

    Raises:
        ValueError: `path` is not a file, or holds a model that is not a CATFace model.
    """
    import catface_keras.models as models
    from catface_keras.models.fusion import FusionModel
    from catface_keras.models.multibranch import MultiBranchModel

    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"model {path} does not exist")
    for module in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"{models.__name__}.{module.name}")
    model = keras.saving.load_model(path, compile=compile)
    if not isinstance(model, (MultiBranchModel, FusionModel)):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not a CATFace stage-1 (MultiBranchModel) "
            "or stage-2 (FusionModel) model"
        )
    return model
