"""Shared by the alignment tests: one MTCNN detector, one tiny model, the commands' detector.

MTCNN takes seconds to build, so one instance serves the whole package; the
commands get it through `detection.default_detector`, which tests replace.
"""

import keras
import pytest

from catface_keras.alignment import detection


@pytest.fixture(scope="package")
def mtcnn_detector():
    return detection.MtcnnDetector()


@pytest.fixture
def use_detector(monkeypatch):
    """`use_detector(d)`: the commands get `d` instead of building MTCNN."""

    def install(detector):
        monkeypatch.setattr(detection, "default_detector", lambda min_face_size=20: detector)

    return install


@pytest.fixture(scope="package")
def tiny_model_path(tmp_path_factory):
    from catface_keras.models.multibranch import MultiBranchModel

    keras.utils.set_random_seed(0)
    model = MultiBranchModel(backbone="ir_tiny", image_size=32, embedding_dim=16)
    path = tmp_path_factory.mktemp("model") / "stage1.keras"
    model.save(path)
    return path
