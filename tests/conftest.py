"""Test session set-up: quiet TensorFlow, two logical CPU devices, the shared tiny model.

The CPU is split into two logical devices before TensorFlow initialises, so
that tests can run `tf.distribute.MirroredStrategy` on one machine.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


import pytest  # noqa: E402
from tiny_models import tiny_stage1_model  # noqa: E402

from catface_keras.models.loading import load_model  # noqa: E402


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One MirroredStrategy over the two logical CPUs, shared by every test.

    Strategies created one after another in a process number their collective
    ops from the same start, and the second then trips over the first's
    ("Shape mismatch in the collective instance"); sharing one avoids it.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """`tiny_models.tiny_stage1_model()` saved once: `.../stage1.keras` (32 px, 16-d)."""
    path = tmp_path_factory.mktemp("tiny_model") / "stage1.keras"
    tiny_stage1_model().save(path)
    return path


@pytest.fixture(scope="session")
def tiny_training_path(tmp_path_factory):
    """`tiny_stage1_model()` in its training model (8 classes) saved once, as a checkpoint
    is: the network and the AdaFace class centres (`.../epoch_001.keras`)."""
    from catface_keras.models.stage1_training import MultiBranchTraining

    path = tmp_path_factory.mktemp("tiny_training") / "epoch_001.keras"
    MultiBranchTraining(tiny_stage1_model(), num_classes=8).save(path)
    return path


@pytest.fixture(scope="session")
def imported_backbone_path(tmp_path_factory):
    """An `IResNetEmbedder` file as `catface import-weights` writes it (embedding only, no
    attribute outputs): the committed tiny one (32 px, 12-d), copied to `.../backbone.keras`."""
    import pathlib
    import shutil

    source = pathlib.Path(__file__).parent / "models/data/embedder_before_inference_split.keras"
    path = tmp_path_factory.mktemp("imported") / "backbone.keras"
    shutil.copyfile(source, path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    """The saved tiny model, loaded once (as the commands load it). Do not train it."""
    return load_model(tiny_model_path)
