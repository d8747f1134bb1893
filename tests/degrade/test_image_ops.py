"""Tests for the shared degradation primitives."""

import numpy as np
import pytest
import tensorflow as tf

from catface_keras.degrade import image_ops


def test_prepare_images_round_trips_dtype_and_rank():
    images = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    floats, restore = image_ops.prepare_images(images)
    assert floats.dtype == tf.float32 and floats.shape == (2, 8, 8, 3)
    restored = restore(floats + 0.4)
    assert restored.dtype == tf.uint8
    np.testing.assert_array_equal(restored.numpy(), images)

    single, restore = image_ops.prepare_images(tf.zeros([9, 10, 1], tf.float16))
    assert single.shape == (1, 9, 10, 1)
    out = restore(single - 5.0)
    assert out.shape == (9, 10, 1) and out.dtype == tf.float16
    assert float(tf.reduce_min(out)) == 0.0


@pytest.mark.parametrize(
    "images, message",
    [
        (tf.zeros([2, 16, 16, 4]), "grayscale \\(1 channel\\) or RGB"),
        (tf.zeros([2, 16, 16, 2]), "Received: images.shape=\\(2, 16, 16, 2\\)"),
        (tf.zeros([16, 16]), "must have shape"),
        (tf.zeros([2, 4, 16, 3]), "at least 8 x 8"),
        (tf.zeros([2, 16, 16, 3], tf.int32), "Received: images.dtype=int32"),
    ],
)
def test_prepare_images_rejects_bad_input(images, message):
    with pytest.raises(ValueError, match=message):
        image_ops.prepare_images(images)


def test_prepare_images_rejects_unknown_size():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def dynamic(images):
        return image_ops.prepare_images(images)[0]

    with pytest.raises(ValueError, match="static height, width"):
        dynamic.get_concrete_function()


def test_check_seed():
    assert image_ops.check_seed([1, 2]).dtype == tf.int64
    with pytest.raises(ValueError, match="Received: seed.shape=\\(3,\\)"):
        image_ops.check_seed([1, 2, 3])
    with pytest.raises(ValueError, match="Received: seed.dtype=float32"):
        image_ops.check_seed([1.0, 2.0])


def test_per_image_rejects_bad_shapes_and_values():
    assert image_ops.per_image(2.0, 3, "strength").shape == (3,)
    with pytest.raises(ValueError, match="Received: strength.shape=\\(2, 2\\)"):
        image_ops.per_image([[1.0, 2.0], [3.0, 4.0]], 2, "strength")
    with pytest.raises(ValueError, match="must be finite"):
        image_ops.per_image(np.inf, 2, "strength")


def test_derived_seeds_differ_by_purpose_and_are_stable():
    seed = image_ops.check_seed([3, 4])
    first = image_ops.derive_seed(seed, "noise").numpy()
    assert not np.array_equal(first, image_ops.derive_seed(seed, "tilt").numpy())
    np.testing.assert_array_equal(first, image_ops.derive_seed(seed, "noise").numpy())


def test_stochastic_count_is_exact_on_integers_and_unbiased():
    seeds = [image_ops.check_seed([0, i]) for i in range(400)]
    assert {int(image_ops.stochastic_count(0.5, 64, s)) for s in seeds[:20]} == {32}
    assert {int(image_ops.stochastic_count(0.0, 7, s)) for s in seeds[:20]} == {0}
    assert {int(image_ops.stochastic_count(1.0, 7, s)) for s in seeds[:20]} == {7}
    ones = [int(image_ops.stochastic_count(0.3, 1, s)) for s in seeds]
    assert set(ones) == {0, 1}
    assert abs(np.mean(ones) - 0.3) < 0.08


def test_random_split_partitions_the_batch():
    first, second = image_ops.random_split(10, 4, image_ops.check_seed([5, 6]))
    assert len(first) == 4 and len(second) == 6
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(10))


def test_linear_upsample_matches_tf_image_resize():
    images = tf.random.stateless_uniform([2, 7, 5, 3], [1, 1])
    for factor in (1, 2, 3, 4):
        expected = tf.image.resize(images, [7 * factor, 5 * factor], method="bilinear")
        np.testing.assert_allclose(
            image_ops.linear_upsample(images, factor), expected, atol=1e-5
        )


def test_box_downsample_averages_blocks():
    images = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    expected = images.reshape(1, 2, 2, 2, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(image_ops.box_downsample(images), expected)


def test_bilinear_sample_matches_numpy():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 6, 7, 3)).astype(np.float32)
    y = rng.uniform(-1, 7, (2, 4, 5)).astype(np.float32)
    x = rng.uniform(-1, 8, (2, 4, 5)).astype(np.float32)
    result = image_ops.bilinear_sample(tf.constant(images), tf.constant(y), tf.constant(x))
    yc, xc = np.clip(y, 0, 5), np.clip(x, 0, 6)
    y0 = np.minimum(np.floor(yc), 4).astype(int)
    x0 = np.minimum(np.floor(xc), 5).astype(int)
    wy, wx = (yc - y0)[..., None], (xc - x0)[..., None]
    b = np.arange(2)[:, None, None]
    expected = (
        images[b, y0, x0] * (1 - wy) * (1 - wx)
        + images[b, y0, x0 + 1] * (1 - wy) * wx
        + images[b, y0 + 1, x0] * wy * (1 - wx)
        + images[b, y0 + 1, x0 + 1] * wy * wx
    )
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-3)


def test_warp_by_zero_is_exact_and_by_one_pixel_shifts():
    images = tf.random.stateless_uniform([2, 9, 11, 3], [2, 2], 0, 255)
    zero = tf.zeros([2, 9, 11, 2])
    np.testing.assert_array_equal(image_ops.warp(images, zero), images)
    shift = tf.concat([tf.zeros([2, 9, 11, 1]), tf.ones([2, 9, 11, 1])], axis=-1)
    shifted = image_ops.warp(images, shift)
    np.testing.assert_allclose(shifted[:, :, :-1], images[:, :, 1:], atol=1e-4)


def test_blur_pyramid_variances_match_impulse_responses():
    size = 64
    impulse = np.zeros([1, size, size, 1], np.float32)
    impulse[0, 30, 30, 0] = 1.0
    blurred, variances = image_ops.blur_pyramid(tf.constant(impulse), 3)
    coords = np.arange(size)
    for level, variance in zip(blurred, variances):
        profile = level.numpy()[0, :, :, 0].sum(axis=1)
        mean = (profile * coords).sum() / profile.sum()
        measured = (profile * (coords - mean) ** 2).sum() / profile.sum()
        # The pyramid is shift-variant; one impulse position is within a third of the mean.
        assert measured == pytest.approx(variance, rel=0.35)
    assert variances == sorted(variances)


def test_variance_blend_endpoints():
    images = tf.random.stateless_uniform([1, 16, 16, 3], [3, 3], 0, 255)
    blurred, variances = image_ops.blur_pyramid(images, 2)
    zero = tf.zeros([1, 16, 16, 1])
    np.testing.assert_array_equal(
        image_ops.variance_blend(images, blurred, variances, zero), images
    )
    at_first = image_ops.variance_blend(images, blurred, variances, zero + variances[0])
    np.testing.assert_allclose(at_first, blurred[0], atol=1e-3)
    beyond = image_ops.variance_blend(images, blurred, variances, zero + 1e6)
    np.testing.assert_allclose(beyond, blurred[-1], atol=1e-3)
