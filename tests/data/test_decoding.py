import logging

import numpy as np
import pytest
import tensorflow as tf
from data.face_writers import encode, face_image

from catface_keras.data.decoding import (
    ImageDecodeError,
    SkippedImages,
    SkippedImagesLogger,
    decode_elements,
    decode_image,
)


def test_decodes_to_rgb_whatever_the_format():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    for suffix in (".png", ".bmp", ".jpg"):
        image = decode_image(encode(red, suffix))
        assert image.shape == (8, 8, 3) and image.dtype == np.uint8
        assert image[..., 0].min() >= 250 and image[..., 1:].max() <= 5, suffix
    grey = decode_image(encode(np.full((5, 5), 77, np.uint8)[..., None].repeat(3, -1)))
    assert grey.shape == (5, 5, 3)


def test_non_square_images_are_centre_cropped_then_resized():
    image = np.zeros((30, 10, 3), np.uint8)
    image[10:20] = 200  # the centre square
    decoded = decode_image(encode(image), image_size=5)
    assert decoded.shape == (5, 5, 3) and decoded.min() == 200


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_and_garbage_bytes_are_refused(suffix):
    data = encode(face_image(0, 64, 64), suffix)
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError):
        decode_image(data[:-2])
    with pytest.raises(ImageDecodeError):
        decode_image(b"not an image at all")
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")


def test_stream_skips_and_counts_corrupt_images_and_keeps_order(caplog):
    good = [face_image(seed, 16, 16) for seed in range(4)]
    encoded = [encode(good[0]), b"garbage", encode(good[1]), encode(good[2])[:50], encode(good[3])]
    names = [f"img{index}" for index in range(5)]
    elements = tf.data.Dataset.from_tensor_slices(
        (encoded, names, np.arange(5, dtype=np.int32), np.zeros((5, 2), np.int32))
    )
    skipped = SkippedImages()
    decoded = list(decode_elements(elements, 16, skipped).as_numpy_iterator())
    assert [int(identity) for _, identity, _ in decoded] == [0, 2, 4]
    for (image, _, _), expected in zip(decoded, [good[0], good[1], good[3]]):
        np.testing.assert_array_equal(image, expected)
    assert skipped.count == 2 and [name.split()[0] for name in skipped.names] == ["img1", "img3"]

    skipped.add("img1", "again")  # the same image skipped again counts once
    assert skipped.count == 2

    logger = SkippedImagesLogger(skipped)
    logs = {}
    with caplog.at_level(logging.WARNING):
        logger.on_epoch_end(0, logs)
        SkippedImagesLogger(SkippedImages()).on_epoch_end(0, {})  # nothing skipped: silent
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "epoch 1: 2 undecodable image(s) skipped" in warnings[0]
    assert "img1" in warnings[0] and logs["skipped_images"] == 2
