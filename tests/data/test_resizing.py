"""The one square resize: centre crop, area when shrinking, bilinear when enlarging."""

import cv2
import numpy as np

from catface_keras.data.resizing import resize_faces, square_resize


def test_shrinking_averages_the_pixels_each_output_pixel_covers():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    blocks = image.reshape(4, 2, 4, 2, 3).astype(np.float64).mean(axis=(1, 3))
    # Area interpolation of an exact 2x shrink is the 2x2 block mean (rounded).
    np.testing.assert_allclose(square_resize(image, 4), blocks, atol=0.5 + 1e-9)


def test_enlarging_is_bilinear():
    image = np.random.default_rng(1).integers(0, 256, (6, 6, 3)).astype(np.uint8)
    expected = cv2.resize(image, (9, 9), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(square_resize(image, 9), expected)


def test_a_non_square_image_is_centre_cropped_first():
    image = np.zeros((30, 10, 3), np.uint8)
    image[10:20] = 200  # the centre square
    assert square_resize(image, 10).min() == 200
    resized = square_resize(image, 5)
    assert resized.shape == (5, 5, 3) and resized.min() == 200


def test_resize_faces_keeps_matching_sizes_and_resizes_each():
    images = np.random.default_rng(2).integers(0, 256, (2, 40, 40, 3)).astype(np.uint8)
    assert resize_faces(images, 40) is images
    resized = resize_faces(images, 32, "resizing")
    assert resized.shape == (2, 32, 32, 3) and resized.dtype == np.uint8
    np.testing.assert_array_equal(resized[1], square_resize(images[1], 32))
