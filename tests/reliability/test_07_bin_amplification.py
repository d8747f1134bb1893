"""Item 7: a small `.bin` that references one image many times, or announces huge ones."""

import pickle

import pytest
from data.face_writers import encode, face_image

from catface_keras.data import insightface_bin
from catface_keras.data.insightface_bin import read_verification_bin

from reliability.helpers import png_bomb, snapshot


def test_one_image_referenced_many_times_is_refused(tmp_path):
    face = encode(face_image(0, 112, 112), ".jpg")
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps(([face] * 20000, [True] * 10000), protocol=2))
    assert path.stat().st_size < 100_000
    before = snapshot(tmp_path)
    # Before: 20000 decodes into a 750 MB array (100,000 references: 3.9 GB).
    with pytest.raises(ValueError, match=r"lfw.bin: its images add up to .* reference the same"):
        read_verification_bin(path)
    assert snapshot(tmp_path) == before


def test_images_announcing_too_many_pixels_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "cfp.bin"
    path.write_bytes(pickle.dumps(([png_bomb(), png_bomb()], [False]), protocol=2))
    monkeypatch.setattr(insightface_bin, "MAX_DECODED_BYTES", 10**9)
    with pytest.raises(ValueError, match=r"cfp.bin: the images' headers announce more than"):
        read_verification_bin(path)
    monkeypatch.setattr(insightface_bin, "MAX_IMAGES", 1)
    with pytest.raises(ValueError, match=r"2 images, more than the 1"):
        read_verification_bin(path)
