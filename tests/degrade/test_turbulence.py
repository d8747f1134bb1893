"""Tests for the atmospheric-turbulence degradation."""

import math
import sys

import numpy as np
import pytest
import tensorflow as tf
from degrade.face_drawing import drawn_faces

from catface_keras import degrade

# The package re-exports the function `turbulence` under the module's name.
turbulence_module = sys.modules["catface_keras.degrade.turbulence"]


def mean_ssim(a, b):
    a = tf.cast(a, tf.float32)
    b = tf.cast(b, tf.float32)
    return float(tf.reduce_mean(tf.image.ssim(a, b, max_val=255.0)))


def numpy_short_exposure_sigma(d_over_r0, points=801):
    """Strehl-equivalent width from the 2-D OTF on a Cartesian grid (lambda/D units)."""
    f = np.linspace(-1.0, 1.0, points)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    nu = np.minimum(np.hypot(fy, fx), 1.0)
    diffraction = 2 / np.pi * (np.arccos(nu) - nu * np.sqrt(1 - nu**2))
    otf = diffraction * np.exp(-3.44 * d_over_r0 ** (5 / 3) * nu ** (5 / 3) * (1 - nu ** (1 / 3)))
    peak = otf.sum() * (f[1] - f[0]) ** 2
    return 1.0 / math.sqrt(2 * math.pi * peak)


@pytest.mark.parametrize("d_over_r0", [0.0, 1.0, 2.0, 4.0])
def test_short_exposure_sigma_matches_2d_integral(d_over_r0):
    ours = float(turbulence_module.short_exposure_sigma(d_over_r0))
    assert ours == pytest.approx(numpy_short_exposure_sigma(d_over_r0), rel=5e-3)


def test_diffraction_sigma_and_excess_blur():
    assert float(turbulence_module.short_exposure_sigma(0.0)) == pytest.approx(
        turbulence_module.DIFFRACTION_SIGMA, rel=1e-3
    )
    excess = turbulence_module.excess_blur_sigma([0.0, 0.5, 1.0, 2.0]).numpy()
    assert excess[0] == 0.0
    assert np.all(np.diff(excess) > 0)


def test_tilt_rms_follows_fried():
    size, d_over_r0, diffraction_pixels = 64, 2.0, 4.0
    field = degrade.tilt_field([1, 2], 48, size, size, d_over_r0, 0.1, diffraction_pixels).numpy()
    expected = math.sqrt(0.182) * d_over_r0 ** (5 / 6) * diffraction_pixels * size / 112
    np.testing.assert_allclose(field.std(axis=(0, 1, 2)), [expected, expected], rtol=0.15)
    assert abs(field.mean()) < 0.2 * expected


def test_zero_strength_is_identity():
    images = drawn_faces(3, 48)
    np.testing.assert_array_equal(degrade.turbulence(images, [1, 2], 0.0).numpy(), images)
    floats = tf.random.stateless_uniform([2, 40, 40, 3], [4, 4], 0, 255)
    np.testing.assert_array_equal(degrade.turbulence(floats, [1, 2], 0.0), floats)
    field = degrade.tilt_field([1, 2], 2, 40, 40, 0.0)
    np.testing.assert_array_equal(field, tf.zeros([2, 40, 40, 2]))


def correlation_length(field):
    """Lag (pixels, along x) where the mean autocorrelation of the x-tilt falls below 1/2."""
    values = field[..., 1] - field[..., 1].mean()
    variance = (values**2).mean()
    for lag in range(1, values.shape[2]):
        if (values[:, :, lag:] * values[:, :, :-lag]).mean() / variance < 0.5:
            return lag
    return values.shape[2]


def test_correlation_length_grows_with_configured_coherence():
    lengths = [
        correlation_length(degrade.tilt_field([3, 4], 24, 64, 64, 1.0, coherence).numpy())
        for coherence in (0.08, 0.16, 0.32)
    ]
    assert lengths[0] < lengths[1] < lengths[2], lengths
    assert lengths[2] >= 2 * lengths[0], lengths


def test_longitudinal_and_transverse_tilt_differences_follow_dimm_theory():
    # Differential image motion (DIMM) theory for Z-tilt (Tokovinin 2002): at a separation of b
    # aperture diameters the differential variance along the separation (longitudinal) exceeds
    # the one across it (transverse) by K_l / K_t. A field of independent components (as in
    # P2S) would give 1.
    coherence, size, b = 0.1, 96, 2.0
    field = degrade.tilt_field([5, 6], 64, size, size, 1.0, coherence).numpy()[..., 1]
    lag = round(b * coherence * size)
    b = lag / (coherence * size)
    longitudinal = np.mean((field[:, :, lag:] - field[:, :, :-lag]) ** 2)
    transverse = np.mean((field[:, lag:] - field[:, :-lag]) ** 2)
    k_longitudinal = 1 - 0.532 * b ** (-1 / 3) - 0.024 * b ** (-7 / 3)
    k_transverse = 1 - 0.798 * b ** (-1 / 3) + 0.018 * b ** (-7 / 3)
    assert longitudinal / transverse == pytest.approx(k_longitudinal / k_transverse, rel=0.1)


def test_strength_is_per_image():
    images = np.repeat(drawn_faces(1, 48), 2, axis=0)
    result = degrade.turbulence(images, [5, 6], [0.0, 2.0]).numpy()
    np.testing.assert_array_equal(result[0], images[0])
    assert np.abs(result[1].astype(float) - images[1]).mean() > 2.0


def test_severity_is_monotonic_in_d_over_r0():
    images = drawn_faces(4, 64)
    scores = [
        mean_ssim(images, degrade.turbulence(images, [7, 8], strength))
        for strength in (0.0, 0.25, 0.5, 1.0, 2.0)
    ]
    assert scores[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


def test_same_seed_same_output_and_different_seed_differs():
    images = drawn_faces(2, 48)
    first = degrade.turbulence(images, [1, 2], 1.0).numpy()
    np.testing.assert_array_equal(first, degrade.turbulence(images, [1, 2], 1.0).numpy())
    assert not np.array_equal(first, degrade.turbulence(images, [1, 3], 1.0).numpy())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"d_over_r0": 10.0},
        {"d_over_r0": 2.0, "tilt_correlation": 1.0 / 32.0},
        {"d_over_r0": 2.0, "tilt_correlation": 2.0, "diffraction_pixels": 16.0},
        {"d_over_r0": 2.0, "blur_variation": 2.0},
    ],
)
def test_extreme_parameters_stay_finite_and_in_range(kwargs):
    result = degrade.turbulence(drawn_faces(2, 32).astype(np.float32), [1, 1], **kwargs).numpy()
    assert np.all(np.isfinite(result))
    assert result.min() >= 0.0 and result.max() <= 255.0


@pytest.mark.parametrize("shape", [(2, 40, 56, 1), (2, 56, 40, 3), (40, 40, 3)])
def test_grayscale_non_square_and_single_images(shape):
    images = tf.random.stateless_uniform(shape, [9, 9], 0, 255)
    result = degrade.turbulence(images, [1, 2], 1.5)
    assert result.shape == shape and result.dtype == tf.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tilt_correlation": 0.0}, "Received: tilt_correlation=0.0"),
        ({"diffraction_pixels": -1.0}, "Received: diffraction_pixels=-1.0"),
        ({"blur_variation": 3.0}, "Received: blur_variation=3.0"),
        ({"d_over_r0": [1.0, 2.0, 3.0]}, "Incompatible shapes|must be"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, message):
    arguments = {"d_over_r0": 1.0, **kwargs}
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=message):
        degrade.turbulence(tf.zeros([2, 32, 32, 3]), [1, 2], **arguments)


def test_xla_compiled_math_matches_eager():
    images = drawn_faces(2, 32).astype(np.float32)
    eager = degrade.turbulence(images, [1, 2], 1.5).numpy()
    compiled = degrade.turbulence(images, [1, 2], 1.5, jit_compile=True).numpy()
    np.testing.assert_allclose(compiled, eager, atol=0.5)
