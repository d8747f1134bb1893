"""Image primitives shared by the degradation families.

Everything here is pure TensorFlow (no `numpy_function`, no OpenCV), so the same code runs in
`tf.data.Dataset.map` on CPU and inside a Keras layer on an accelerator. Randomness lives in the
callers; these functions are deterministic.

Conventions used by the whole `catface_keras.degrade` package:
- images are `(batch, height, width, channels)` with `channels` 1 (grayscale) or 3 (RGB) and a
  static height, width and channel count; pixel values are in [0, 255];
- computation happens in float32 and the result is returned in the input dtype (`uint8` results
  are rounded);
- a seed is a `[2]` int32/int64 tensor for the `tf.random.stateless_*` ops.
"""

import functools
import zlib

import numpy as np
import tensorflow as tf

# Face crops in this package are 112 x 112 (ArcFace alignment). Pixel-valued parameters of the
# degradations (blur lengths, low-resolution sizes, turbulence sampling) are given for a crop of
# this size and scale with the actual image, so that a 64-px test image and a 224-px crop see the
# same degradation relative to the face.
REFERENCE_SIZE = 112

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)

# The degradation code branches in Python on static values only. Skipping AutoGraph's
# conversion of it makes tracing inside `tf.data` or a `tf.function` several times faster.
no_autograph = tf.autograph.experimental.do_not_convert


def prepare_images(images, name="images"):
    """Validate a batch of images and convert it to float32.

    Args:
        images: `(batch, height, width, channels)` or a single `(height, width, channels)` image;
            `channels` 1 or 3; dtype uint8 or floating, values in [0, 255].
        name: argument name used in error messages.

    Returns:
        `(float_images, restore)`: float32 `(batch, height, width, channels)` and a function that
        clips a float32 batch of the same shape to [0, 255] and converts it back to the input's
        dtype and rank.
    """
    images = tf.convert_to_tensor(images)
    dtype = images.dtype
    if dtype != tf.uint8 and dtype not in _FLOAT_DTYPES:
        raise ValueError(
            f"`{name}` must be uint8 or floating point pixel values in [0, 255]. "
            f"Received: {name}.dtype={dtype.name}"
        )
    rank = images.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"`{name}` must have shape (batch, height, width, channels) or (height, width, "
            f"channels). Received: {name}.shape={images.shape}"
        )
    single = rank == 3
    if single:
        images = images[tf.newaxis]
    height, width, channels = images.shape[1:]
    if height is None or width is None or channels is None:
        raise ValueError(
            f"`{name}` needs a static height, width and channel count (use `tf.ensure_shape` or "
            f"resize to a fixed size before degrading). Received: {name}.shape={images.shape}"
        )
    if channels not in (1, 3):
        raise ValueError(
            f"`{name}` must be grayscale (1 channel) or RGB (3 channels). "
            f"Received: {name}.shape={images.shape}"
        )
    if height < 8 or width < 8:
        raise ValueError(
            f"`{name}` must be at least 8 x 8 pixels. Received: {name}.shape={images.shape}"
        )
    float_images = tf.cast(images, tf.float32)

    def restore(result):
        result = tf.clip_by_value(result, 0.0, 255.0)
        if dtype == tf.uint8:
            result = tf.cast(tf.round(result), tf.uint8)
        else:
            result = tf.cast(result, dtype)
        return result[0] if single else result

    return float_images, restore


def check_seed(seed):
    """Return `seed` as an int64 `[2]` tensor, with a clear error for anything else."""
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise ValueError(
            f"`seed` must be an integer tensor of shape [2]. Received: seed.dtype={seed.dtype.name}"
        )
    if seed.shape.rank is not None and seed.shape.as_list() != [2]:
        raise ValueError(f"`seed` must have shape [2]. Received: seed.shape={seed.shape}")
    return tf.cast(seed, tf.int64)


def derive_seed(seed, purpose):
    """A seed for one purpose ("tilt", "noise", ...) derived from a parent seed.

    Folding in a fixed number per purpose name (instead of splitting into a running list)
    keeps every stream stable when another purpose is added.
    """
    return tf.random.experimental.stateless_fold_in(seed, zlib.crc32(purpose.encode()) & 0x7FFFFFFF)


def element_seed(seed, index):
    """The seed of element `index` of a dataset whose base seed is `seed`.

    Use with `Dataset.enumerate()` so every batch owns its seed whatever the `tf.data`
    parallelism: `ds.enumerate().map(lambda i, x: degrade(x, element_seed(seed, i)))`.
    """
    return tf.random.experimental.stateless_fold_in(check_seed(seed), tf.cast(index, tf.int64))


def per_image(value, batch, name):
    """Broadcast a scalar or `(batch,)` parameter to a float32 `(batch,)` tensor."""
    value = tf.convert_to_tensor(value, tf.float32)
    if value.shape.rank not in (0, 1):
        raise ValueError(
            f"`{name}` must be a scalar or have shape (batch,). "
            f"Received: {name}.shape={value.shape}"
        )
    static = tf.get_static_value(value)
    if static is not None and not np.all(np.isfinite(static)):
        raise ValueError(f"`{name}` must be finite. Received: {name}={static}")
    return tf.broadcast_to(value, [batch])


def scale_for(height, width):
    """How many pixels of this image one pixel of the 112-px reference crop spans."""
    return max(height, width) / REFERENCE_SIZE


def stochastic_count(fraction, total, seed):
    """`floor(fraction * total + u)` with `u ~ U[0, 1)`: an unbiased integer share of `total`.

    A batch of 64 with fraction 0.5 always splits 32/32 (so accelerated code sees at most two
    sub-batch sizes), while a batch of 1 gets a Bernoulli(fraction) draw.
    """
    u = tf.random.stateless_uniform([], seed)
    count = tf.cast(tf.floor(fraction * tf.cast(total, tf.float32) + u), tf.int32)
    return tf.clip_by_value(count, 0, total)


def random_split(total, count, seed):
    """Split `range(total)` at random into sorted index sets of `count` and the rest."""
    order = tf.argsort(tf.random.stateless_uniform([total], seed))
    return tf.sort(order[:count]), tf.sort(order[count:])


def apply_to_subset(images, indices, fn):
    """`images` with `fn` applied to the images at `indices` (a 1-D index tensor).

    `fn` is not run on an empty subset (several image ops reject an empty batch).
    """

    def update():
        updated = fn(tf.gather(images, indices))
        return tf.tensor_scatter_nd_update(images, indices[:, tf.newaxis], updated)

    return tf.cond(tf.size(indices) > 0, update, lambda: images)


def bilinear_sample(images, y, x):
    """Sample `images` at real-valued pixel coordinates, clamping to the border.

    Args:
        images: float32 `(batch, height, width, channels)`.
        y, x: float32 `(batch, out_height, out_width)` row and column coordinates, pixel centres
            at integers.

    Returns:
        float32 `(batch, out_height, out_width, channels)`.
    """
    _, height, width, channels = images.shape
    batch = tf.shape(images)[0]
    y = tf.clip_by_value(y, 0.0, height - 1.0)
    x = tf.clip_by_value(x, 0.0, width - 1.0)
    y0 = tf.minimum(tf.floor(y), max(height - 2.0, 0.0))
    x0 = tf.minimum(tf.floor(x), max(width - 2.0, 0.0))
    wy = (y - y0)[..., tf.newaxis]
    wx = (x - x0)[..., tf.newaxis]
    base = tf.range(batch)[:, tf.newaxis, tf.newaxis] * (height * width)
    top_left = base + tf.cast(y0, tf.int32) * width + tf.cast(x0, tf.int32)
    flat = tf.reshape(images, [-1, channels])
    # One row of `flat` per pixel; four gathers of the 2 x 2 neighbourhood.
    a = tf.gather(flat, top_left)
    b = tf.gather(flat, top_left + 1)
    c = tf.gather(flat, top_left + width)
    d = tf.gather(flat, top_left + width + 1)
    # The (1 - w) form makes integer coordinates reproduce the input exactly.
    top = a * (1.0 - wx) + b * wx
    bottom = c * (1.0 - wx) + d * wx
    return top * (1.0 - wy) + bottom * wy


def warp(images, displacement):
    """Warp `images` by a dense displacement field (backward mapping, bilinear, border clamp).

    Args:
        images: float32 `(batch, height, width, channels)`.
        displacement: float32 `(batch, height, width, 2)`, (dy, dx) in pixels; output pixel
            (i, j) takes the input value at (i + dy, j + dx).

    Returns:
        float32 `(batch, height, width, channels)`.
    """
    _, height, width, _ = images.shape
    rows = tf.range(height, dtype=tf.float32)[:, tf.newaxis]
    cols = tf.range(width, dtype=tf.float32)[tf.newaxis, :]
    return bilinear_sample(images, rows + displacement[..., 0], cols + displacement[..., 1])


def box_downsample(images):
    """Average 2 x 2 blocks: `(batch, 2h, 2w, channels)` -> `(batch, h, w, channels)`."""
    _, height, width, channels = images.shape
    blocks = tf.reshape(images, [-1, height // 2, 2, width // 2, 2, channels])
    return tf.reduce_mean(blocks, axis=[2, 4])


def linear_upsample(images, factor):
    """Bilinear upsampling by an integer `factor`, equal to `tf.image.resize(method="bilinear")`.

    Written as `factor` interleaved phases of two-tap blends of shifted copies: XLA fuses this
    into one loop, while its lowering of `tf.image.resize` is slow on CPU.

    Args:
        images: float32 `(batch, height, width, channels)`.
        factor: Python int >= 1.

    Returns:
        float32 `(batch, factor * height, factor * width, channels)`.
    """
    if factor == 1:
        return images
    for axis in (1, 2):
        length = images.shape[axis]
        # Half-pixel centres, coordinates clamped at the borders = edge replication.
        padded = tf.concat(
            [_take(images, axis, 0, 1), images, _take(images, axis, length - 1, length)], axis
        )
        phases = []
        for phase in range(factor):
            offset = (phase + 0.5) / factor - 0.5
            start, weight = (0, 1.0 + offset) if offset < 0 else (1, offset)
            low = _take(padded, axis, start, start + length)
            high = _take(padded, axis, start + 1, start + 1 + length)
            phases.append(low * (1.0 - weight) + high * weight)
        stacked = tf.stack(phases, axis=axis + 1)
        shape = images.shape.as_list()
        shape[0] = -1
        shape[axis] = length * factor
        images = tf.reshape(stacked, shape)
    return images


def _take(images, axis, start, stop):
    return images[:, start:stop] if axis == 1 else images[:, :, start:stop]


def blur_pyramid(images, levels):
    """Blurred copies of `images` at full size, from a 2x box-downsampling pyramid.

    Level k is the image averaged down by 2**k (repeated 2 x 2 box averaging) and bilinearly
    upsampled back: a blur whose kernel is a box of width 2**k convolved with a triangle of
    half-width 2**k, i.e. a variance of (4**k - 1) / 12 + 4**k / 6 pixels^2 per axis
    (level 1: sigma ~ 1, level 2: ~ 2, level 3: ~ 4 pixels). Sizes that are not multiples of
    2**levels are mirror-padded first. This costs a few elementwise passes per level, much
    less than a per-image convolution, on every backend and under XLA.

    Args:
        images: float32 `(batch, height, width, channels)`.
        levels: number of blurred levels (>= 1).

    Returns:
        `(blurred, variances)`: a list of `levels` float32 tensors shaped like `images`, and the
        matching list of per-axis blur variances in pixels^2 (Python floats).
    """
    _, height, width, _ = images.shape
    multiple = 2**levels
    pad_y, pad_x = -height % multiple, -width % multiple
    current = images
    if pad_y or pad_x:
        current = tf.pad(images, [[0, 0], [0, pad_y], [0, pad_x], [0, 0]], "SYMMETRIC")
    blurred, variances = [], []
    for level in range(1, levels + 1):
        current = box_downsample(current)
        blurred.append(linear_upsample(current, 2**level)[:, :height, :width])
        factor = 4.0**level
        variances.append((factor - 1.0) / 12.0 + factor / 6.0)
    return blurred, variances


def variance_blend(images, blurred, variances, variance_map):
    """Per-pixel blur: interpolate between blur levels by the wanted blur variance.

    Piecewise-linear interpolation in variance between the sharp image (variance 0) and the
    pyramid levels, written as a sum of clipped ramps so that it is one fused elementwise pass.

    Args:
        images: float32 `(batch, height, width, channels)`, the sharp level.
        blurred: list of blurred levels (see `blur_pyramid`).
        variances: their per-axis variances in pixels^2, increasing.
        variance_map: float32 `(batch, height, width, 1)`, wanted variance per pixel; values
            beyond the last level are clamped to it.

    Returns:
        float32 `(batch, height, width, channels)`.
    """
    result = images
    previous_level, previous_variance = images, 0.0
    for level, variance in zip(blurred, variances):
        ramp = tf.clip_by_value(
            (variance_map - previous_variance) / (variance - previous_variance), 0.0, 1.0
        )
        result = result + ramp * (level - previous_level)
        previous_level, previous_variance = level, variance
    return result


def maybe_jit(function, jit_compile):
    """`function` compiled with XLA when `jit_compile`, else `function` itself.

    XLA fuses the degradation math into a few loops (the whole mix runs about 3x faster on CPU
    than with one TensorFlow kernel per op). Random numbers are drawn outside, where
    TensorFlow's own kernels are much faster than XLA's on CPU. XLA compiles once per input
    shape; `stochastic_count` keeps the number of sub-batch shapes small.
    """
    return _compiled(function) if jit_compile else function


@functools.cache
def _compiled(function):
    # One wrapper per function; tf.function keeps its own per-shape trace cache inside.
    return tf.function(function, jit_compile=True, autograph=False)
