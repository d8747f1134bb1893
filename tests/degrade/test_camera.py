"""Tests for the camera-style degradations."""

import numpy as np
import pytest
import tensorflow as tf
from degrade.face_drawing import drawn_faces

from catface_keras import degrade

SEED = [3, 1]


def mean_ssim(a, b):
    return float(
        tf.reduce_mean(
            tf.image.ssim(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=255.0)
        )
    )


def psnr(a, b):
    error = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return np.inf if error == 0 else 10 * np.log10(255.0**2 / error)


COMPONENTS = {
    "exposure": lambda images, strength: degrade.exposure(images, strength),
    "motion_blur": lambda images, strength: degrade.motion_blur(images, SEED, strength),
    "low_resolution": lambda images, strength: degrade.low_resolution(images, strength),
    "sensor_noise": lambda images, strength: degrade.sensor_noise(images, SEED, strength, 1.0),
    "jpeg": lambda images, strength: degrade.jpeg(images, strength),
}
TYPICAL = {"exposure": -1.5, "motion_blur": 7.0, "low_resolution": 14, "sensor_noise": 12.0,
           "jpeg": 20}


@pytest.mark.parametrize("name", COMPONENTS)
@pytest.mark.parametrize(
    "shape, dtype",
    [((2, 48, 48, 3), tf.uint8), ((2, 40, 56, 3), tf.float32), ((2, 56, 40, 1), tf.float16),
     ((48, 48, 3), tf.uint8)],
)
def test_shape_dtype_and_range_are_preserved(name, shape, dtype):
    images = tf.cast(tf.random.stateless_uniform(shape, [1, 2], 0, 255), dtype)
    result = COMPONENTS[name](images, TYPICAL[name])
    assert result.shape == shape and result.dtype == dtype
    values = tf.cast(result, tf.float32).numpy()
    assert np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 255


@pytest.mark.parametrize(
    "name, strengths",
    [
        ("motion_blur", [2.0, 5.0, 9.0, 14.0]),
        ("low_resolution", [48, 32, 20, 12]),
        ("sensor_noise", [2.0, 6.0, 12.0, 24.0]),
        ("jpeg", [90, 50, 25, 10]),
        ("exposure", [-0.5, -1.0, -2.0, -3.0]),
    ],
)
def test_severity_is_monotonic(name, strengths):
    images = drawn_faces(4, 64)
    scores = [mean_ssim(images, COMPONENTS[name](images, strength)) for strength in strengths]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] < 0.9, scores


@pytest.mark.parametrize(
    "name, call",
    [
        ("exposure", lambda x: degrade.exposure(x, [1e3, -1e3])),
        ("motion_blur", lambda x: degrade.motion_blur(x, SEED, [1e6, -5.0], angle=[1e4, -3.0])),
        ("low_resolution", lambda x: degrade.low_resolution(x, [0.0, 1e6])),
        ("sensor_noise", lambda x: degrade.sensor_noise(x, SEED, [1e9, -1.0], [1e9, -1.0])),
        ("jpeg", lambda x: degrade.jpeg(x, [-10.0, 1e3])),
    ],
)
def test_extreme_parameters_give_no_nan(name, call):
    values = call(tf.constant(drawn_faces(2, 32), tf.float32)).numpy()
    assert np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 255


def test_exposure_is_a_saturating_gain_in_linear_light():
    images = drawn_faces(2, 32).astype(np.float32)
    stops = np.array([-2.0, 1.0], np.float32)
    expected = np.minimum(images * 2.0 ** (stops / 2.2)[:, None, None, None], 255.0)
    np.testing.assert_allclose(degrade.exposure(images, stops), expected, rtol=1e-5)
    np.testing.assert_array_equal(degrade.exposure(images, 0.0), images)


@pytest.mark.parametrize(
    "quality, shape",
    [(10, (3, 64, 64, 3)), (50, (3, 64, 64, 3)), (90, (3, 64, 64, 3)), (30, (3, 48, 48, 1))],
)
def test_jpeg_matches_libjpeg(quality, shape):
    faces = drawn_faces(shape[0], shape[2])
    if shape[-1] == 1:
        faces = faces[..., :1]
    reference = np.stack(
        [tf.io.decode_jpeg(tf.io.encode_jpeg(face, quality=quality)).numpy() for face in faces]
    )
    ours = degrade.jpeg(faces, quality).numpy()
    # Close to the real codec, and as far from the original as the real codec is.
    assert psnr(ours, reference) > 38.0
    assert psnr(ours, faces) == pytest.approx(psnr(reference, faces), abs=1.0)


def test_jpeg_quality_is_per_image():
    faces = np.repeat(drawn_faces(1, 48), 2, axis=0)
    result = degrade.jpeg(faces, [95, 5]).numpy()
    assert psnr(result[0], faces[0]) > psnr(result[1], faces[1]) + 5


def test_low_resolution_matches_area_then_bilinear_resize():
    images = tf.constant(drawn_faces(2, 64), tf.float32)
    expected = tf.image.resize(tf.image.resize(images, [16, 16], method="area"), [64, 64])
    np.testing.assert_allclose(degrade.low_resolution(images, 16), expected, atol=1e-2)
    np.testing.assert_allclose(degrade.low_resolution(images, 64), images, atol=1e-3)


def test_low_resolution_keeps_aspect_ratio_of_non_square_images():
    images = tf.constant(drawn_faces(1, 64, height=32), tf.float32)
    expected = tf.image.resize(tf.image.resize(images, [8, 16], method="area"), [32, 64])
    np.testing.assert_allclose(degrade.low_resolution(images, 16), expected, atol=1e-2)


def test_motion_blur_spreads_a_point_along_its_direction():
    impulse = np.zeros([2, 64, 64, 1], np.float32)
    impulse[:, 32, 32] = 255.0
    length = 12.0
    result = degrade.motion_blur(impulse, SEED, length, angle=[0.0, np.pi / 2]).numpy()[..., 0]
    coords = np.arange(64)

    def spread(profile):
        profile = np.clip(profile, 0, None)
        mean = (profile * coords).sum() / profile.sum()
        return (profile * (coords - mean) ** 2).sum() / profile.sum()

    # A box of length L has variance L^2 / 12 along the motion and none across it.
    assert spread(result[0].sum(axis=0)) == pytest.approx(length**2 / 12, rel=0.15)
    assert spread(result[0].sum(axis=1)) < 0.2
    assert spread(result[1].sum(axis=1)) == pytest.approx(length**2 / 12, rel=0.15)
    assert result[0].sum() == pytest.approx(255.0, rel=0.02)


def test_motion_blur_zero_length_is_identity_and_random_angle_is_seeded():
    images = drawn_faces(2, 48).astype(np.float32)
    np.testing.assert_allclose(degrade.motion_blur(images, SEED, 0.0), images, atol=1e-2)
    first = degrade.motion_blur(images, [1, 1], 9.0).numpy()
    np.testing.assert_array_equal(first, degrade.motion_blur(images, [1, 1], 9.0).numpy())
    assert not np.allclose(first, degrade.motion_blur(images, [1, 2], 9.0).numpy())


def test_sensor_noise_follows_poisson_gaussian_statistics():
    flat = np.full([4, 64, 64, 3], 128.0, np.float32)
    read_std, shot_gain = 6.0, 0.5
    noisy = degrade.sensor_noise(flat, SEED, read_std, shot_gain).numpy()
    residual = (noisy - flat).ravel()
    assert residual.std() == pytest.approx(np.sqrt(read_std**2 + shot_gain * 128.0), rel=0.03)
    assert abs(residual.mean()) < 0.2
    kurtosis = np.mean(residual**4) / residual.var() ** 2
    assert 2.5 < kurtosis < 3.2  # close to a Gaussian's 3
    # Poisson part: brighter pixels are noisier.
    bright = degrade.sensor_noise(flat + 100.0, SEED, 0.0, 2.0).numpy() - (flat + 100.0)
    dark = degrade.sensor_noise(flat - 100.0, SEED, 0.0, 2.0).numpy() - (flat - 100.0)
    assert bright.std() > 2 * dark.std()


def test_sensor_noise_seeding():
    images = drawn_faces(2, 32)
    np.testing.assert_array_equal(degrade.sensor_noise(images, SEED, 0.0, 0.0).numpy(), images)
    first = degrade.sensor_noise(images, [5, 5], 10.0).numpy()
    np.testing.assert_array_equal(first, degrade.sensor_noise(images, [5, 5], 10.0).numpy())
    assert not np.array_equal(first, degrade.sensor_noise(images, [5, 6], 10.0).numpy())


@pytest.mark.parametrize("name", ["motion_blur", "low_resolution", "sensor_noise", "jpeg"])
def test_xla_compiled_math_matches_eager(name):
    images = tf.constant(drawn_faces(2, 32), tf.float32)
    call = {
        "motion_blur": lambda jit: degrade.motion_blur(images, SEED, 6.0, jit_compile=jit),
        "low_resolution": lambda jit: degrade.low_resolution(images, 10, jit_compile=jit),
        "sensor_noise": lambda jit: degrade.sensor_noise(images, SEED, 8.0, jit_compile=jit),
        "jpeg": lambda jit: degrade.jpeg(images, 30, jit_compile=jit),
    }[name]
    # Rounding in JPEG quantisation may flip for a few coefficients.
    assert psnr(call(True), call(False)) > 45.0
