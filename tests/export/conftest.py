"""One tiny stage-1 model, saved and exported once, shared by the export tests.

`tiny_models.tiny_stage1_model(image_size=48)`: 48 is not the serving size, so the in-graph
resize is always exercised. The export goes through `catface export`, version 1.
"""

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
