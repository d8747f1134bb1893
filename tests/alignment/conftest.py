"""Shared by the alignment tests: one MTCNN detector and the commands' detector.

MTCNN takes seconds to build, so one instance serves the whole package; the
commands get it through `detection.default_detector`, which tests replace.
"""

import pytest

from catface_keras.alignment import detection


@pytest.fixture(scope="package")
def mtcnn_detector():
    return detection.MtcnnDetector()


@pytest.fixture
def use_detector(monkeypatch):
    """`use_detector(d)`: the commands get `d` instead of building MTCNN."""

    def install(detector):
        monkeypatch.setattr(detection, "default_detector", lambda min_face_size=20, min_confidence=0.0: detector)

    return install
