"""The portable serving computation: its matrix resize equals `tf.image.resize`'s filter."""

import numpy as np
import pytest
import tensorflow as tf

from catface_keras.export.portable import check_faces, resize_faces, resize_matrix
from catface_keras.export.serving import resize_for_model


@pytest.mark.parametrize("image_size", [48, 64, 160])  # shrinking (antialiased) and enlarging
def test_matrix_resize_equals_the_antialiased_bilinear_resize(image_size):
    faces = np.random.default_rng(image_size).uniform(0, 255, (2, 112, 112, 3)).astype("float32")
    expected = resize_for_model(tf.constant(faces), image_size).numpy()
    resized = resize_faces(tf.constant(faces), image_size).numpy()
    assert resized.shape == (2, image_size, image_size, 3)
    np.testing.assert_allclose(resized, expected, atol=2e-3)


def test_resize_matrix_rows_are_normalised_filters():
    matrix = resize_matrix(48)
    assert matrix.shape == (48, 112)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    assert (matrix >= 0).all()
    # A 112 -> 48 triangle filter spans about 2 * 112 / 48 input pixels.
    assert max(np.count_nonzero(row) for row in matrix) <= 6


def test_identity_at_the_serving_size():
    faces = tf.constant(np.ones((1, 112, 112, 3), np.float32))
    assert resize_faces(faces, 112) is faces


def test_check_faces_casts_uint8_and_refuses_strings():
    faces = np.full((1, 112, 112, 3), 200, np.uint8)
    checked = check_faces(faces)
    assert checked.dtype == np.float32 and checked.max() == 200.0
    with pytest.raises(ValueError, match=r"Received: faces.shape=\(1, 112, 112, 3\), "
                       r"faces.dtype=<U1"):
        check_faces(np.full((1, 112, 112, 3), "a"))
