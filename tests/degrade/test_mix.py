"""Tests for `degrade`, the turbulence / camera-style mix."""

import numpy as np
import pytest
import tensorflow as tf
from degrade.face_drawing import drawn_faces

from catface_keras import degrade
from catface_keras.degrade import DegradationConfig

EAGER = DegradationConfig(jit_compile=False)
# Camera family reduced to a fixed, recognisable darkening: 3 stops under.
DARKEN_ONLY = dict(
    exposure_probability=1.0,
    exposure_stops_range=(-3.0, -3.0),
    motion_blur_probability=0.0,
    low_resolution_probability=0.0,
    noise_probability=0.0,
    jpeg_probability=0.0,
    jit_compile=False,
)
DARKENING = 2.0 ** (-3.0 / 2.2)


def darkened(images, result):
    """Which images were darkened by exactly 3 stops (the camera family in DARKEN_ONLY)."""
    ratio = result.reshape(len(result), -1).mean(1) / images.reshape(len(images), -1).mean(1)
    return np.abs(ratio - DARKENING) < 1e-3


@pytest.mark.parametrize(
    "shape, dtype",
    [((6, 48, 48, 3), tf.uint8), ((6, 40, 56, 3), tf.float32), ((5, 48, 32, 1), tf.float16),
     ((48, 48, 3), tf.uint8), ((1, 32, 32, 3), tf.float32)],
)
def test_shape_dtype_and_range_are_preserved(shape, dtype):
    images = tf.cast(tf.random.stateless_uniform(shape, [1, 2], 0, 255), dtype)
    result = degrade.degrade(images, [4, 2], EAGER)
    assert result.shape == shape and result.dtype == dtype
    values = tf.cast(result, tf.float32).numpy()
    assert np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 255


def test_same_seed_same_output_different_seed_different_output():
    images = drawn_faces(8, 48)
    first = degrade.degrade(images, [1, 2], EAGER).numpy()
    np.testing.assert_array_equal(first, degrade.degrade(images, [1, 2], EAGER).numpy())
    second = degrade.degrade(images, [1, 3], EAGER).numpy()
    assert not np.array_equal(first, second)
    # int32 and int64 seeds are the same seed.
    np.testing.assert_array_equal(
        first, degrade.degrade(images, tf.constant([1, 2], tf.int32), EAGER).numpy()
    )


def test_parameters_are_drawn_per_image():
    images = np.repeat(drawn_faces(1, 48), 8, axis=0)
    result = degrade.degrade(images, [7, 7], EAGER).numpy().astype(np.float32)
    for i in range(8):
        for j in range(i + 1, 8):
            assert np.abs(result[i] - result[j]).mean() > 0.5, (i, j)


@pytest.mark.parametrize(
    "fraction, expected_turbulent", [(0.5, 32), (0.25, 16), (0.0, 0), (1.0, 64)]
)
def test_family_share_of_a_batch(fraction, expected_turbulent):
    images = np.maximum(drawn_faces(64, 32), 10).astype(np.float32)
    config = DegradationConfig(turbulence_fraction=fraction, **DARKEN_ONLY)
    result = degrade.degrade(images, [3, 3], config).numpy()
    assert np.sum(~darkened(images, result)) == expected_turbulent


def test_camera_components_are_sampled_per_image():
    images = np.maximum(drawn_faces(64, 32), 10).astype(np.float32)
    config = DegradationConfig(
        turbulence_fraction=0.0, **{**DARKEN_ONLY, "exposure_probability": 0.25}
    )
    result = degrade.degrade(images, [3, 4], config).numpy()
    dark = darkened(images, result)
    assert dark.sum() == 16
    np.testing.assert_array_equal(result[~dark], images[~dark])


def test_batch_of_one_draws_the_family_at_random():
    image = np.maximum(drawn_faces(1, 32), 10).astype(np.float32)
    config = DegradationConfig(**DARKEN_ONLY)
    families = [
        bool(darkened(image, degrade.degrade(image, [0, seed], config).numpy())[0])
        for seed in range(40)
    ]
    assert 8 < sum(families) < 32


def test_extreme_configuration_gives_no_nan():
    config = DegradationConfig(
        d_over_r0_range=(10.0, 10.0),
        exposure_probability=1.0,
        exposure_stops_range=(6.0, 6.0),
        motion_blur_probability=1.0,
        motion_blur_length_range=(56.0, 56.0),
        low_resolution_probability=1.0,
        low_resolution_size_range=(1.0, 1.0),
        noise_probability=1.0,
        read_noise_range=(100.0, 100.0),
        shot_noise_range=(20.0, 20.0),
        jpeg_probability=1.0,
        jpeg_quality_range=(1.0, 1.0),
        jit_compile=False,
    )
    values = degrade.degrade(drawn_faces(4, 32), [1, 1], config).numpy()
    assert values.min() >= 0 and values.max() <= 255


def test_same_output_whatever_the_tf_data_parallelism():
    base_seed = tf.constant([11, 12], tf.int64)
    batches = drawn_faces(12, 32).reshape(6, 2, 32, 32, 3).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(batches).enumerate()
    dataset = dataset.map(
        lambda index, images: (
            index,
            degrade.degrade(images, degrade.element_seed(base_seed, index), EAGER),
        ),
        num_parallel_calls=4,
        deterministic=False,
    )
    # Two passes over the same pipeline (one trace), elements finishing in any order.
    first = {int(index): images.numpy() for index, images in dataset}
    second = {int(index): images.numpy() for index, images in dataset}
    assert sorted(first) == sorted(second) == list(range(6))
    for index, images in enumerate(batches):
        np.testing.assert_array_equal(first[index], second[index])
        # The same batch and seed outside tf.data (eager) gives the same images, up to
        # float rounding from graph optimisations.
        eager = degrade.degrade(images, degrade.element_seed(base_seed, index), EAGER)
        np.testing.assert_allclose(first[index], eager.numpy(), atol=1e-3)
    assert not np.array_equal(first[0], first[1])


def test_xla_compiled_mix_is_deterministic_and_close_to_eager():
    images = drawn_faces(4, 32)
    compiled_config = DegradationConfig(jit_compile=True)
    first = degrade.degrade(images, [5, 1], compiled_config).numpy()
    np.testing.assert_array_equal(first, degrade.degrade(images, [5, 1], compiled_config).numpy())
    eager = degrade.degrade(images, [5, 1], EAGER).numpy()
    assert np.abs(first.astype(float) - eager).mean() < 1.0


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"config": {"turbulence_fraction": 0.5}}, "Received: config=\\{"),
        ({"seed": [1, 2, 3]}, "Received: seed.shape"),
        ({"images": tf.zeros([2, 32, 32, 4])}, "Received: images.shape"),
    ],
)
def test_invalid_arguments_are_rejected(arguments, message):
    call = {"images": tf.zeros([2, 32, 32, 3]), "seed": [1, 2], "config": EAGER, **arguments}
    with pytest.raises(ValueError, match=message):
        degrade.degrade(call["images"], call["seed"], call["config"])
