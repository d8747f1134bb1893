"""One tiny stage-1 model, saved and exported once, shared by the export tests; the models of
each kind the ONNX and LiteRT tests export, and the reference they are compared with.

`tiny_models.tiny_stage1_model(image_size=48)`: 48 is not the serving size, so the in-graph
resize is always exercised. The export goes through `catface export`, version 1.
"""

import keras
import pytest
import tensorflow as tf
from tiny_models import tiny_stage1_model

from catface_keras.cli.main import main
from catface_keras.models.loading import load_model

IMAGE_SIZE = 48
MODEL_NAME = "catface"


@pytest.fixture(scope="package")
def keras_model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "stage1.keras"
    tiny_stage1_model(image_size=IMAGE_SIZE).save(path)
    return path


@pytest.fixture(scope="package")
def keras_model(keras_model_path):
    return load_model(keras_model_path)


@pytest.fixture(scope="package")
def exported(keras_model_path, tmp_path_factory):
    """`saved_models/catface/1`, written by `catface export`."""
    base = tmp_path_factory.mktemp("saved_models") / MODEL_NAME
    assert main(["export", "--model", str(keras_model_path), "--out", str(base)]) == 0
    return base / "1"


@pytest.fixture(scope="package")
def loaded(exported):
    return tf.saved_model.load(str(exported))


# --- ONNX and LiteRT: one model of each kind the formats take, and an independent reference.

FORMAT_MODEL_KINDS = ("stage1", "stage2", "imported")


@pytest.fixture(scope="package")
def format_model_paths(keras_model_path, tmp_path_factory):
    """kind -> `.keras` file: stage 1 (48 px, resized in the graph), stage 2 (CATF fusion
    on it) and an imported backbone (an `IResNetEmbedder` at 112 px, as `catface
    import-weights` writes one)."""
    from catface_keras.atomic_files import save_model_atomically
    from catface_keras.backbones.iresnet import IResNetEmbedder
    from catface_keras.models.fusion import FusionModel

    folder = tmp_path_factory.mktemp("format_models")
    keras.utils.set_random_seed(1)
    save_model_atomically(
        FusionModel(load_model(keras_model_path), fusion="catf", embedding_dim=16),
        folder / "stage2.keras",
    )
    keras.utils.set_random_seed(2)
    save_model_atomically(
        IResNetEmbedder(backbone="ir_tiny", image_size=112, embedding_dim=16, dropout=0.0),
        folder / "backbone.keras",
    )
    return {
        "stage1": keras_model_path,
        "stage2": folder / "stage2.keras",
        "imported": folder / "backbone.keras",
    }


@pytest.fixture(scope="package")
def format_models(format_model_paths):
    return {
        kind: load_model(path, allow_embedder=True) for kind, path in format_model_paths.items()
    }
