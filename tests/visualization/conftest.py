import numpy as np
import pytest
from visualization.tiny_model import SIZE, tiny_stage1_model


@pytest.fixture(scope="module")
def model():
    return tiny_stage1_model()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
