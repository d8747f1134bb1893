"""The similarity warp onto the ArcFace template: exact points, 1 px on pixels, recovered motion."""

import cv2
import numpy as np
import pytest

from catface_keras.landmark_alignment import (
    ALIGNED_SIZE,
    ARCFACE_TEMPLATE,
    align_face,
    estimate_similarity,
    similarity_parameters,
    transform_points,
)


def similarity_matrix(scale, degrees, translation):
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.concatenate([scale * rotation, np.asarray(translation, float)[:, None]], axis=1)


def blob_image(centres, size, sigma):
    """`(size[0], size[1], 3)` uint8: a white Gaussian blob of `sigma` px at each (x, y) centre."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.zeros((height, width))
    for cx, cy in centres:
        image = np.maximum(image, np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2)))
    return np.repeat(np.round(255 * image).astype(np.uint8)[..., None], 3, axis=2)


def blob_centroid(image, near, radius=8):
    """Intensity centroid (x, y) of the blob inside a window around `near`."""
    x0, y0 = int(round(near[0])) - radius, int(round(near[1])) - radius
    window = image[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1, 0].astype(np.float64)
    y, x = np.mgrid[0 : window.shape[0], 0 : window.shape[1]]
    total = window.sum()
    return np.array([x0 + (x * window).sum() / total, y0 + (y * window).sum() / total])


@pytest.mark.parametrize(
    "scale, degrees, translation",
    [(1.0, 0.0, (0.0, 0.0)), (2.7, 23.0, (140.0, 95.0)), (0.6, -41.0, (12.5, 60.25)),
     (3.1, 170.0, (400.0, 380.0))],
)
def test_known_motion_of_the_template_is_recovered(scale, degrees, translation):
    motion = similarity_matrix(scale, degrees, translation)
    landmarks = transform_points(motion, ARCFACE_TEMPLATE)

    forward = estimate_similarity(ARCFACE_TEMPLATE, landmarks)
    backward = estimate_similarity(landmarks, ARCFACE_TEMPLATE)

    np.testing.assert_allclose(forward, motion, atol=1e-9)
    recovered_scale, recovered_degrees, recovered_translation = similarity_parameters(forward)
    assert recovered_scale == pytest.approx(scale, rel=1e-9)
    assert recovered_degrees == pytest.approx(degrees, abs=1e-7)
    np.testing.assert_allclose(recovered_translation, translation, atol=1e-7)
    # The alignment transform is the inverse motion: scale 1/s, angle -theta.
    inverse_scale, inverse_degrees, _ = similarity_parameters(backward)
    assert inverse_scale == pytest.approx(1 / scale, rel=1e-9)
    assert inverse_degrees == pytest.approx(-degrees, abs=1e-7)
    np.testing.assert_allclose(transform_points(backward, landmarks), ARCFACE_TEMPLATE, atol=1e-9)


def test_noisy_points_give_the_least_squares_similarity():
    # A similarity x' = a x - b y + tx, y' = b x + a y + ty is linear in (a, b, tx, ty),
    # so its least-squares fit is an ordinary linear solve, independent of Umeyama's SVD.
    rng = np.random.default_rng(3)
    source = rng.uniform(0, 200, (5, 2))
    target = transform_points(similarity_matrix(1.7, 31.0, (20, -7)), source)
    target += rng.normal(0, 2.0, target.shape)
    design = np.zeros((10, 4))
    design[0::2] = np.column_stack([source[:, 0], -source[:, 1], np.ones(5), np.zeros(5)])
    design[1::2] = np.column_stack([source[:, 1], source[:, 0], np.zeros(5), np.ones(5)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, target.reshape(-1), rcond=None)
    expected = np.array([[a, -b, tx], [b, a, ty]])

    np.testing.assert_allclose(estimate_similarity(source, target), expected, atol=1e-9)


def test_mirrored_points_get_a_rotation_not_a_reflection():
    mirrored = ARCFACE_TEMPLATE * np.array([-1.0, 1.0]) + np.array([200.0, 0.0])
    matrix = estimate_similarity(mirrored, ARCFACE_TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_synthetic_face_lands_on_the_template_within_one_pixel():
    # A "face" whose five landmarks are Gaussian blobs, drawn directly in a
    # 480x520 photo after a known rotation, scale and translation.
    motion = similarity_matrix(2.9, -27.0, (60.0, 150.0))
    landmarks = transform_points(motion, ARCFACE_TEMPLATE)
    assert np.all(landmarks > 30) and np.all(landmarks < (450, 490))  # blobs whole in the photo
    photo = blob_image(landmarks, (520, 480), sigma=2.0 * 2.9)

    aligned = align_face(photo, landmarks)

    assert aligned.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3) and aligned.dtype == np.uint8
    for point, expected in zip(landmarks, ARCFACE_TEMPLATE):
        centroid = blob_centroid(aligned, expected)
        assert np.linalg.norm(centroid - expected) < 1.0, (point, centroid, expected)
    # The estimate from the photo's landmarks undoes the motion.
    scale, degrees, _ = similarity_parameters(estimate_similarity(landmarks, ARCFACE_TEMPLATE))
    assert scale == pytest.approx(1 / 2.9) and degrees == pytest.approx(27.0)


def test_align_face_at_another_size_scales_the_template():
    landmarks = ARCFACE_TEMPLATE * 2.0 + 30
    photo = blob_image(landmarks, (300, 300), sigma=4.0)
    aligned = align_face(photo, landmarks, size=224)
    for expected in ARCFACE_TEMPLATE * 2.0:
        assert np.linalg.norm(blob_centroid(aligned, expected, radius=12) - expected) < 1.0


def test_align_face_keeps_channel_order_and_pads_black():
    photo = np.zeros((200, 200, 3), np.uint8)
    photo[..., 0] = 255  # red only
    # The face sits in the corner: the crop reaches past the photo, which pads black.
    aligned = align_face(photo, ARCFACE_TEMPLATE * 0.5 + 160)
    assert aligned[..., 1:].max() == 0 and aligned[56, 56, 0] == 255
    assert aligned[-1, -1, 0] == 0


@pytest.mark.parametrize(
    "source, message",
    [(np.zeros((5, 2)), "coincide"), (np.zeros((5, 3)), "must be \\(N, 2\\)"),
     (np.full((5, 2), np.nan), "finite")],
)
def test_bad_points_are_refused(source, message):
    with pytest.raises(ValueError, match=message):
        estimate_similarity(source, ARCFACE_TEMPLATE)


def test_align_face_needs_five_landmarks():
    with pytest.raises(ValueError, match="landmarks.shape=\\(4, 2\\)"):
        align_face(np.zeros((50, 50, 3), np.uint8), ARCFACE_TEMPLATE[:4])


def test_warp_matches_opencv_estimate_on_exact_points():
    # An independent estimator (OpenCV's) agrees when the points fit a similarity exactly.
    landmarks = transform_points(similarity_matrix(1.9, 12.0, (33.0, 41.0)), ARCFACE_TEMPLATE)
    opencv, _ = cv2.estimateAffinePartial2D(landmarks, ARCFACE_TEMPLATE, method=cv2.LMEDS)
    np.testing.assert_allclose(estimate_similarity(landmarks, ARCFACE_TEMPLATE), opencv, atol=1e-6)
