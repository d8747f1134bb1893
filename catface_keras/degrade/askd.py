"""A-SKD's low-resolution copies (Shin et al. 2022; docs/PAPER.md section 9)."""

import math

import keras
import numpy as np
import tensorflow as tf

# Sides A-SKD shrinks a 112 px face to, as fractions of the input side.
ASKD_FRACTIONS = (14 / 112, 28 / 112, 56 / 112)


def _gaussian_kernel(sigma, channels):
    radius = max(int(math.ceil(2 * sigma)), 1)
    offsets = np.arange(-radius, radius + 1, dtype="float32")
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    weights /= weights.sum()
    kernel = np.outer(weights, weights)[:, :, None, None]
    return tf.constant(np.tile(kernel, (1, 1, channels, 1)), "float32")


def askd_low_resolution(images, seed, fractions=ASKD_FRACTIONS, blur_sigma=1.0):
    """Each image shrunk (nearest neighbour) to a random side, then back up, then blurred.

    Args:
        images: `(batch, S, S, 3)` float pixels in [0, 255].
        seed: an int or a `keras.random.SeedGenerator`; each image draws one of
            `fractions` of S (at least 2 px; 14/28/56 px for S = 112).
        fractions: the sides to shrink to, as fractions of S.
        blur_sigma: Gaussian blur after the bilinear upsampling (*choice*:
            A-SKD names a blur, not its width); 0 for none.

    Returns:
        `(batch, S, S, 3)` float32 in [0, 255].
    """
    images = tf.cast(images, "float32")
    side = images.shape[1]
    choice = keras.random.randint((tf.shape(images)[0],), 0, len(fractions), seed=seed)
    result = tf.zeros_like(images)
    for index, fraction in enumerate(fractions):
        small = max(int(round(side * fraction)), 2)
        low = tf.image.resize(images, (small, small), method="nearest")
        back = tf.image.resize(low, (side, side), method="bilinear")
        mask = tf.cast(tf.equal(choice, index), "float32")[:, None, None, None]
        result += mask * back
    if blur_sigma > 0:
        kernel = _gaussian_kernel(blur_sigma, images.shape[-1])
        radius = kernel.shape[0] // 2
        padded = tf.pad(result, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
        result = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
    return tf.clip_by_value(result, 0.0, 255.0)
