"""Fixtures of the reliability tests (helpers in `reliability.helpers`)."""

import pytest
from data.face_writers import face_image, write_image


@pytest.fixture
def face_folder(tmp_path):
    """An image folder of 3 identities x 4 PNG faces (24x24)."""
    root = tmp_path / "faces"
    for index in range(12):
        write_image(root / f"id{index % 3}" / f"{index:02d}.png", face_image(index, 24, 24))
    return root
