"""Item 6: images whose header claims 20000x20000 pixels, in every decode path."""

import pytest
import tensorflow as tf

from catface_keras.data.decoding import (
    ImageTooLargeError,
    decode_image,
    max_image_pixels,
    set_max_image_pixels,
)
from catface_keras.data.image_folder import read_image_folder
from catface_keras.data.tfrecord import write_tfrecord_shards
from catface_keras.export.serving import decode_image_batch

from reliability.helpers import png_bomb, snapshot


def test_decoder_refuses_a_bomb_from_its_header():
    bomb = png_bomb()
    assert len(bomb) < 2000
    with pytest.raises(ImageTooLargeError, match=r"20000x20000 = 400000000 pixels.*limit"):
        decode_image(bomb, 112)
    small = png_bomb(300, 200)  # allowed, but its data is cut short: an ordinary decode error
    assert max_image_pixels() == 40_000_000
    set_max_image_pixels(1000)
    try:
        with pytest.raises(ImageTooLargeError, match="limit of 1000"):
            decode_image(small)
    finally:
        set_max_image_pixels(None)


def test_convert_skips_a_bomb_and_counts_it(face_folder, tmp_path):
    (face_folder / "id0" / "bomb.png").write_bytes(png_bomb())
    before = snapshot(face_folder)
    metadata = write_tfrecord_shards(read_image_folder(face_folder, None, ["Male"]),
                                     tmp_path / "shards", image_size=16)
    assert metadata["num_examples"] == 12 and metadata["skipped"]["count"] == 1
    assert "bomb.png" in metadata["skipped"]["examples"][0]
    assert "20000x20000" in metadata["skipped"]["examples"][0]
    assert snapshot(face_folder) == before


def test_serving_graph_refuses_a_bomb_before_decoding():
    with pytest.raises(tf.errors.InvalidArgumentError, match="larger than the limit"):
        decode_image_batch(tf.constant([png_bomb()]), max_image_pixels=40_000_000)
    face = tf.io.encode_png(tf.zeros([112, 112, 3], tf.uint8))
    jpeg = tf.io.encode_jpeg(tf.zeros([64, 64, 3], tf.uint8))
    images = decode_image_batch(tf.stack([face, jpeg]))
    assert images.shape == (2, 112, 112, 3)
