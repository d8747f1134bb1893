"""Item 8: a folder whose images do not decode is refused before the first step."""

import pytest
from data.face_writers import face_image, write_image

from catface_keras.config import config_from_dict
from catface_keras.trainer import DatasetError, run_stage1

from reliability.helpers import snapshot
from tiny_models import TINY_EXPERIMENT as TINY


def folder_config(root):
    return config_from_dict({**TINY, "data": {"source": "image_folder", "path": str(root),
                                              "image_size": 32}})


def test_training_on_undecodable_images_is_refused(tmp_path):
    root = tmp_path / "faces"
    for index in range(16):
        path = root / f"id{index % 4}" / f"{index:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 not a jpeg " + bytes([index]))
    before = snapshot(root)
    # Before: trained for the configured epochs on nothing and exited 0.
    with pytest.raises(DatasetError, match=r"16 of the first 16 training images do not decode"):
        run_stage1(folder_config(root), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "stage1.keras").exists()
    assert snapshot(root) == before


def test_mostly_undecodable_images_are_refused_and_named(tmp_path):
    root = tmp_path / "faces"
    for index in range(16):
        path = root / f"id{index % 4}" / f"{index:02d}.png"
        if index < 6:
            write_image(path, face_image(index, 32, 32))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"broken")
    with pytest.raises(DatasetError, match=r"10 of the first 16 .*at least 50% of the 16 images"):
        run_stage1(folder_config(root), tmp_path / "run", verbose=0)
