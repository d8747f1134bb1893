"""Unconstrained-camera degradations: exposure, motion blur, low resolution, noise, JPEG.

The paper (docs/PAPER.md section 6) uses a GAN trained on WiderFace for this family; here each
artefact is an explicit, parameterised model, batched over images with per-image parameters:

- `exposure`: an exposure change of `stops` EV in linear light. With a power-law display gamma
  (2.2) this is a gain of 2^(stops / 2.2) on pixel values, saturating at 255 as a sensor does.
- `motion_blur`: a straight camera motion of `length` pixels at `angle`, i.e. a box PSF along
  a line (rasterised by bilinear splatting, so non-negative and free of ringing), applied by
  FFT convolution of the reflect-padded image.
- `low_resolution`: area (box) downsampling to `size` pixels on the longer side, like a sensor
  with larger pixels or a face far away, then bilinear upsampling back; written as two small
  matrix products per axis, so each image has its own size in one batched op.
- `sensor_noise`: the Poisson-Gaussian model (Foi et al., 2008): Gaussian noise of variance
  read_std^2 + shot_gain * signal, the Gaussian approximation of photon (Poisson) noise plus
  read-out noise; independent per pixel and channel. The unit normal values are the
  standardised sum of four uniform bytes (Irwin-Hall), which is much cheaper than exact
  Gaussian draws and indistinguishable in an image.
- `jpeg`: baseline JPEG as libjpeg does it: JFIF RGB -> YCbCr, 4:2:0 chroma subsampling (2 x 2
  averaging), 8 x 8 DCT, quantisation with the standard tables (ITU-T T.81 Annex K) scaled by
  the IJG quality formula, dequantisation, inverse DCT, bilinear chroma upsampling ("fancy
  upsampling"). Differences from `tf.io.encode_jpeg`: no integer rounding between stages, edge
  blocks padded by mirroring. In exchange it runs batched, per-image quality, on any device.

`sample_camera_styles` draws a combination and parameters per image and applies them in the
physical order exposure -> motion blur -> low resolution -> noise -> JPEG, all at the image's
working resolution (noise and JPEG blocks are therefore fine-grained even after downscaling).
"""

import math

import numpy as np
import tensorflow as tf

from catface_keras.degrade import image_ops

# Display gamma used to move between linear light and pixel values.
DISPLAY_GAMMA = 2.2

# ITU-T T.81 Annex K quantisation tables (quality 50).
JPEG_LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    np.float32,
)
JPEG_CHROMA_TABLE = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    np.float32,
)
# JFIF full-range RGB -> YCbCr (offsets applied separately).
_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    np.float32,
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def _dct_matrix():
    # Orthonormal DCT-II; for 8 x 8 blocks it is exactly the JPEG forward DCT.
    k = np.arange(8)[:, np.newaxis]
    n = np.arange(8)[np.newaxis, :]
    matrix = np.sqrt(2.0 / 8.0) * np.cos((2 * n + 1) * k * np.pi / 16.0)
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


_DCT = _dct_matrix()
_DCT_2D = np.kron(_DCT, _DCT)


# ----------------------------------------------------------------------------- exposure


def _exposure_math(images, stops):
    gain = tf.pow(2.0, stops / DISPLAY_GAMMA)[:, tf.newaxis, tf.newaxis, tf.newaxis]
    return tf.minimum(images * gain, 255.0)


@image_ops.no_autograph
def exposure(images, stops, jit_compile=False):
    """Under- (stops < 0) or over-exposure (stops > 0) by `stops` EV.

    Args:
        images: `(batch, height, width, channels)` uint8 or float in [0, 255].
        stops: scalar or `(batch,)` exposure change in EV; clipped to [-10, 10].
        jit_compile: compile the math with XLA.

    Returns:
        Same shape and dtype as `images`.
    """
    images, restore = image_ops.prepare_images(images)
    stops = image_ops.per_image(stops, tf.shape(images)[0], "stops")
    stops = tf.clip_by_value(stops, -10.0, 10.0)
    return restore(image_ops.maybe_jit(_exposure_math, jit_compile)(images, stops))


# -------------------------------------------------------------------------- motion blur


def _motion_padding(max_length, height, width):
    return min(int(math.ceil(max_length / 2.0)) + 2, height - 1, width - 1)


def _padded_length(length, padding):
    """FFT length for `length` padded by at least `padding` on both sides.

    The smallest 2-3-5-smooth length (fast FFTs) such that the reflection padding stays below
    the image size on each side, else the minimal one.
    """
    minimum = length + 2 * padding
    maximum = min(length + 3 * padding, 2 * length + padding - 1)
    for candidate in range(minimum, maximum + 1):
        remainder = candidate
        for prime in (2, 3, 5):
            while remainder % prime == 0:
                remainder //= prime
        if remainder == 1:
            return candidate
    return minimum


def _line_kernel(length, angle, shape, samples):
    """`(batch, *shape)` motion PSFs: `samples` points along each line, bilinearly splatted.

    Splatting keeps the PSF non-negative (a sinc transfer function would ring); it adds the
    footprint of one pixel across the line, as pixel integration does. The kernel is centred
    at the origin of the periodic grid.
    """
    positions = tf.linspace(-0.5, 0.5, samples)[tf.newaxis, :] * length[:, tf.newaxis]
    x = positions * tf.cos(angle)[:, tf.newaxis]
    y = positions * tf.sin(angle)[:, tf.newaxis]
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = x - x0, y - y0
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    batch = tf.shape(length)[0]
    base = tf.range(batch)[:, tf.newaxis] * (shape[0] * shape[1])
    ids, weights = [], []
    for dy, dx, weight in (
        (0, 0, (1 - wy) * (1 - wx)),
        (0, 1, (1 - wy) * wx),
        (1, 0, wy * (1 - wx)),
        (1, 1, wy * wx),
    ):
        ids.append(base + ((y0 + dy) % shape[0]) * shape[1] + (x0 + dx) % shape[1])
        weights.append(weight / samples)
    kernel = tf.math.unsorted_segment_sum(
        tf.concat(weights, 1), tf.concat(ids, 1), batch * shape[0] * shape[1]
    )
    return tf.reshape(kernel, [batch, shape[0], shape[1]])


def _motion_blur_math(images, length, angle, padding):
    _, height, width, _ = images.shape
    padded_height = _padded_length(height, padding)
    padded_width = _padded_length(width, padding)
    paddings = [
        [0, 0],
        [padding, padded_height - height - padding],
        [padding, padded_width - width - padding],
        [0, 0],
    ]
    padded = tf.pad(images, paddings, "REFLECT")
    # Samples half a pixel apart along the longest line the padding allows.
    samples = 4 * padding + 1
    kernel = _line_kernel(length, angle, [padded_height, padded_width], samples)
    spectrum = tf.signal.rfft2d(tf.transpose(padded, [0, 3, 1, 2]))
    transfer = tf.signal.rfft2d(kernel)[:, tf.newaxis]
    blurred = tf.signal.irfft2d(spectrum * transfer, fft_length=[padded_height, padded_width])
    blurred = tf.transpose(blurred, [0, 2, 3, 1])
    return blurred[:, padding : padding + height, padding : padding + width]


@image_ops.no_autograph
def motion_blur(images, seed, length, angle=None, jit_compile=False):
    """Linear motion blur of `length` pixels in direction `angle`.

    Args:
        images: `(batch, height, width, channels)` uint8 or float in [0, 255].
        seed: `[2]` int seed, used for the direction when `angle` is None.
        length: scalar or `(batch,)`, blur length in pixels of this image, >= 0; lengths beyond
            the padding (half the static maximum length + 2, at most the image size) wrap
            around the borders.
        angle: scalar or `(batch,)` direction in radians from the x axis, or None for a
            uniform random direction per image.
        jit_compile: compile the math with XLA.

    Returns:
        Same shape and dtype as `images`.
    """
    images, restore = image_ops.prepare_images(images)
    seed = image_ops.check_seed(seed)
    _, height, width, _ = images.shape
    batch = tf.shape(images)[0]
    longer = max(height, width)
    length = tf.clip_by_value(image_ops.per_image(length, batch, "length"), 0.0, longer)
    if angle is None:
        angle = tf.random.stateless_uniform(
            [batch], image_ops.derive_seed(seed, "motion_angle"), 0.0, np.pi
        )
    angle = image_ops.per_image(angle, batch, "angle")
    # The padding is static: from the lengths when they are known, else for half the image.
    static_length = tf.get_static_value(length)
    max_length = longer / 2.0
    if static_length is not None and static_length.size:
        max_length = float(np.max(static_length))
    padding = _motion_padding(max_length, height, width)
    math_fn = image_ops.maybe_jit(_motion_blur_math, jit_compile)
    return restore(math_fn(images, length, angle, padding))


# ----------------------------------------------------------------------- low resolution


def _area_matrix(size, length, max_size):
    """`(batch, max_size, length)` box-averaging weights onto `size` cells (rows >= size zero)."""
    factor = (length / size)[:, tf.newaxis, tf.newaxis]
    cells = tf.range(max_size, dtype=tf.float32)[:, tf.newaxis]
    pixels = tf.range(length, dtype=tf.float32)[tf.newaxis, :]
    overlap = tf.minimum(pixels + 1.0, (cells + 1.0) * factor) - tf.maximum(pixels, cells * factor)
    weights = tf.maximum(overlap, 0.0) / factor
    return tf.where(cells < size[:, tf.newaxis, tf.newaxis], weights, 0.0)


def _bilinear_matrix(size, length, max_size):
    """`(batch, length, max_size)` bilinear upsampling weights from `size` cells (half-pixel)."""
    size = size[:, tf.newaxis]
    position = (tf.range(length, dtype=tf.float32)[tf.newaxis, :] + 0.5) * size / length - 0.5
    position = tf.clip_by_value(position, 0.0, size - 1.0)
    left = tf.minimum(tf.floor(position), tf.maximum(size - 2.0, 0.0))
    right_weight = position - left
    left = tf.cast(left, tf.int32)
    return tf.one_hot(left, max_size) * (1.0 - right_weight)[..., tf.newaxis] + tf.one_hot(
        left + 1, max_size
    ) * right_weight[..., tf.newaxis]


def _low_resolution_math(images, size, max_size):
    _, height, width, _ = images.shape
    longer = max(height, width)
    size_y = tf.maximum(tf.round(size * height / longer), 1.0)
    size_x = tf.maximum(tf.round(size * width / longer), 1.0)
    max_y = max(1, math.ceil(max_size * height / longer))
    max_x = max(1, math.ceil(max_size * width / longer))
    down_y = _area_matrix(size_y, height, max_y)[:, tf.newaxis]
    down_x = _area_matrix(size_x, width, max_x)[:, tf.newaxis]
    up_y = _bilinear_matrix(size_y, height, max_y)[:, tf.newaxis]
    up_x = _bilinear_matrix(size_x, width, max_x)[:, tf.newaxis]
    channels_first = tf.transpose(images, [0, 3, 1, 2])
    small = tf.matmul(tf.matmul(down_y, channels_first), down_x, transpose_b=True)
    large = tf.matmul(tf.matmul(up_y, small), up_x, transpose_b=True)
    return tf.transpose(large, [0, 2, 3, 1])


@image_ops.no_autograph
def low_resolution(images, size, jit_compile=False):
    """Downscale to `size` pixels on the longer side (area averaging), then back (bilinear).

    Args:
        images: `(batch, height, width, channels)` uint8 or float in [0, 255].
        size: scalar or `(batch,)`, low-resolution size of the longer side in pixels; rounded,
            clipped to [1, longer side]. The image's own size returns it unchanged.
        jit_compile: compile the math with XLA.

    Returns:
        Same shape and dtype as `images`.
    """
    images, restore = image_ops.prepare_images(images)
    _, height, width, _ = images.shape
    longer = max(height, width)
    size = image_ops.per_image(size, tf.shape(images)[0], "size")
    size = tf.clip_by_value(tf.round(size), 1.0, longer)
    static_size = tf.get_static_value(size)
    max_size = longer
    if static_size is not None and static_size.size:
        max_size = int(np.max(static_size))
    math_fn = image_ops.maybe_jit(_low_resolution_math, jit_compile)
    return restore(math_fn(images, size, max_size))


# ------------------------------------------------------------------------ sensor noise


def _draw_noise_bits(seed, batch, height, width, channels):
    """Random int32 words for `_normal_from_bits`, one per pixel value."""
    return tf.random.stateless_uniform(
        [batch, height, width, channels], seed, minval=None, maxval=None, dtype=tf.int32
    )


def _normal_from_bits(bits):
    """Approximately standard normal values from random 32-bit words, one per word.

    The sum of a word's four uniform bytes (Irwin-Hall, n = 4) standardised: excess kurtosis
    -0.3, tails cut at 3.45 sigma, invisible in sensor noise. Integer adds and shifts cost a
    tenth of the Box-Muller transcendentals under XLA on CPU and a quarter of
    `tf.random.stateless_normal`'s time.
    """
    byte_pairs = tf.constant(0x00FF00FF)
    pairs = tf.bitwise.bitwise_and(bits, byte_pairs) + tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(bits, 8), byte_pairs
    )
    total = tf.bitwise.bitwise_and(pairs, 0xFFFF) + tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(pairs, 16), 0xFFFF
    )
    # Four bytes uniform on 0..255: mean 510, variance 4 (256^2 - 1) / 12.
    return (tf.cast(total, tf.float32) - 510.0) * (1.0 / math.sqrt(4.0 * (256.0**2 - 1.0) / 12.0))


def _sensor_noise_math(images, bits, read_std, shot_gain):
    normal = _normal_from_bits(bits)
    read_std = read_std[:, tf.newaxis, tf.newaxis, tf.newaxis]
    shot_gain = shot_gain[:, tf.newaxis, tf.newaxis, tf.newaxis]
    std = tf.sqrt(tf.square(read_std) + shot_gain * tf.maximum(images, 0.0))
    return tf.clip_by_value(images + std * normal, 0.0, 255.0)


@image_ops.no_autograph
def sensor_noise(images, seed, read_std, shot_gain=0.0, jit_compile=False):
    """Poisson-Gaussian sensor noise: std sqrt(read_std^2 + shot_gain * pixel value).

    Args:
        images: `(batch, height, width, channels)` uint8 or float in [0, 255].
        seed: `[2]` int seed.
        read_std: scalar or `(batch,)`, signal-independent (read-out) noise std, >= 0.
        shot_gain: scalar or `(batch,)`, photon-noise variance per unit of pixel value, >= 0
            (1.0 gives std 11 at mid-grey).
        jit_compile: compile the math with XLA.

    Returns:
        Same shape and dtype as `images`.
    """
    images, restore = image_ops.prepare_images(images)
    seed = image_ops.check_seed(seed)
    _, height, width, channels = images.shape
    batch = tf.shape(images)[0]
    read_std = tf.clip_by_value(image_ops.per_image(read_std, batch, "read_std"), 0.0, 1e3)
    shot_gain = tf.clip_by_value(image_ops.per_image(shot_gain, batch, "shot_gain"), 0.0, 1e3)
    bits = _draw_noise_bits(image_ops.derive_seed(seed, "noise"), batch, height, width, channels)
    math_fn = image_ops.maybe_jit(_sensor_noise_math, jit_compile)
    return restore(math_fn(images, bits, read_std, shot_gain))


# --------------------------------------------------------------------------------- JPEG


def _quality_tables(quality):
    """IJG quality scaling of the Annex K tables: `(batch, 1, 64)` luma and chroma."""
    quality = quality[:, tf.newaxis, tf.newaxis]
    scale = tf.where(quality < 50.0, 5000.0 / quality, 200.0 - 2.0 * quality)

    def scaled(table):
        return tf.clip_by_value(tf.floor((table.reshape(64) * scale + 50.0) / 100.0), 1.0, 255.0)

    return scaled(JPEG_LUMA_TABLE), scaled(JPEG_CHROMA_TABLE)


def _jpeg_plane(plane, table):
    """Quantise one `(batch, height, width)` plane (multiples of 8) in the 8 x 8 DCT domain.

    Args:
        plane: float32 `(batch, height, width)` in [0, 255].
        table: float32 `(batch, 1, 64)` quantisation steps, row-major 8 x 8.
    """
    _, height, width = plane.shape
    blocks = tf.reshape(plane - 128.0, [-1, height // 8, 8, width // 8, 8])
    block_count = (height // 8) * (width // 8)
    blocks = tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4]), [-1, block_count, 64])
    # The separable 2-D DCT of a row-major block is one product with kron(D, D).
    coefficients = tf.matmul(blocks, tf.constant(_DCT_2D.T))
    coefficients = tf.round(coefficients / table) * table
    blocks = tf.matmul(coefficients, tf.constant(_DCT_2D))
    blocks = tf.transpose(tf.reshape(blocks, [-1, height // 8, width // 8, 8, 8]), [0, 1, 3, 2, 4])
    return tf.clip_by_value(tf.reshape(blocks, [-1, height, width]) + 128.0, 0.0, 255.0)


def _jpeg_math(images, quality):
    _, height, width, channels = images.shape
    # libjpeg codes whole 16 x 16 macroblocks (8 x 8 for grayscale); pad by mirroring.
    block = 16 if channels == 3 else 8
    pad_y, pad_x = -height % block, -width % block
    padded = tf.pad(images, [[0, 0], [0, pad_y], [0, pad_x], [0, 0]], "SYMMETRIC")
    luma_table, chroma_table = _quality_tables(quality)
    if channels == 1:
        return _jpeg_plane(padded[..., 0], luma_table)[..., tf.newaxis][:, :height, :width]
    # Colour conversion plane by plane: XLA runs a 3 x 3 `tensordot` as a slow tiny matmul.
    rgb = [padded[..., channel] for channel in range(3)]

    def mix(matrix, row, planes):
        return sum(float(matrix[row, column]) * planes[column] for column in range(3))

    luma = _jpeg_plane(mix(_RGB_TO_YCBCR, 0, rgb), luma_table)
    chroma = []
    for row in (1, 2):
        # 4:2:0: libjpeg averages 2 x 2 blocks and upsamples with a triangle filter (bilinear).
        plane = image_ops.box_downsample((mix(_RGB_TO_YCBCR, row, rgb) + 128.0)[..., tf.newaxis])
        plane = _jpeg_plane(plane[..., 0], chroma_table)[..., tf.newaxis]
        chroma.append(image_ops.linear_upsample(plane, 2)[..., 0] - 128.0)
    ycbcr = [luma, chroma[0], chroma[1]]
    rgb = [mix(_YCBCR_TO_RGB, row, ycbcr) for row in range(3)]
    return tf.stack(rgb, axis=-1)[:, :height, :width]


def _masked_jpeg_math(images, quality, selected):
    """JPEG where `selected` (`(batch,)` bool), the input elsewhere (quality there is unused)."""
    compressed = _jpeg_math(images, tf.where(selected, quality, 100.0))
    return tf.where(selected[:, tf.newaxis, tf.newaxis, tf.newaxis], compressed, images)


@image_ops.no_autograph
def jpeg(images, quality, jit_compile=False):
    """JPEG compression artefacts at IJG `quality` (see the module docstring).

    Args:
        images: `(batch, height, width, channels)` uint8 or float in [0, 255].
        quality: scalar or `(batch,)`, IJG quality 1 (worst) to 100; rounded and clipped.
        jit_compile: compile the math with XLA.

    Returns:
        Same shape and dtype as `images`.
    """
    images, restore = image_ops.prepare_images(images)
    quality = image_ops.per_image(quality, tf.shape(images)[0], "quality")
    quality = tf.clip_by_value(tf.round(quality), 1.0, 100.0)
    return restore(image_ops.maybe_jit(_jpeg_math, jit_compile)(images, quality))


# ----------------------------------------------------------------------- combinations


@image_ops.no_autograph
def sample_camera_styles(images, seed, config):
    """Degrade float32 images by a random combination of camera artefacts per image.

    Each component is applied to a random subset of the batch whose size is the component's
    probability times the batch size, rounded at random (so a batch of 1 gets a Bernoulli
    draw); parameters are drawn per image from the config's ranges.

    Args:
        images: float32 `(batch, height, width, channels)` in [0, 255] (already prepared).
        seed: int64 `[2]` seed.
        config: a `DegradationConfig`.

    Returns:
        float32 `(batch, height, width, channels)`; values may leave [0, 255] slightly (JPEG
        ringing), the caller clips once.
    """
    _, height, width, channels = images.shape
    batch = tf.shape(images)[0]
    scale = image_ops.scale_for(height, width)
    longer = max(height, width)
    jit = config.jit_compile

    def component(name, probability):
        component_seed = image_ops.derive_seed(seed, name)
        count = image_ops.stochastic_count(probability, batch, component_seed)
        indices, _ = image_ops.random_split(
            batch, count, tf.random.experimental.stateless_fold_in(component_seed, 1)
        )
        return indices, tf.random.experimental.stateless_fold_in(component_seed, 2)

    def uniform(parameter_seed, count, value_range, purpose):
        return tf.random.stateless_uniform(
            [count], image_ops.derive_seed(parameter_seed, purpose), value_range[0], value_range[1]
        )

    # Cheap components run on the whole batch with a per-image mask (exposure: gain 1); costly
    # ones on the gathered subset. A subset costs two batch copies, a mask the math on all.
    if config.exposure_probability > 0.0:
        indices, parameter_seed = component("exposure", config.exposure_probability)
        stops = uniform(parameter_seed, tf.shape(indices)[0], config.exposure_stops_range, "stops")
        stops = tf.scatter_nd(indices[:, tf.newaxis], stops, [batch])
        images = image_ops.maybe_jit(_exposure_math, jit)(images, stops)

    if config.motion_blur_probability > 0.0:
        indices, parameter_seed = component("motion_blur", config.motion_blur_probability)
        count = tf.shape(indices)[0]
        length_range = [value * scale for value in config.motion_blur_length_range]
        length = uniform(parameter_seed, count, length_range, "length")
        angle = uniform(parameter_seed, count, (0.0, np.pi), "angle")
        padding = _motion_padding(length_range[1], height, width)
        images = image_ops.apply_to_subset(
            images,
            indices,
            lambda subset: image_ops.maybe_jit(_motion_blur_math, jit)(
                subset, length, angle, padding
            ),
        )

    if config.low_resolution_probability > 0.0:
        indices, parameter_seed = component("low_resolution", config.low_resolution_probability)
        size_range = [min(value * scale, longer) for value in config.low_resolution_size_range]
        size = uniform(parameter_seed, tf.shape(indices)[0], size_range, "size")
        size = tf.clip_by_value(tf.round(size), 1.0, longer)
        max_size = min(longer, int(math.ceil(size_range[1])))
        images = image_ops.apply_to_subset(
            images,
            indices,
            lambda subset: image_ops.maybe_jit(_low_resolution_math, jit)(subset, size, max_size),
        )

    if config.noise_probability > 0.0:
        indices, parameter_seed = component("noise", config.noise_probability)
        count = tf.shape(indices)[0]
        read_std = uniform(parameter_seed, count, config.read_noise_range, "read")
        shot_gain = uniform(parameter_seed, count, config.shot_noise_range, "shot")

        def add_noise(subset):
            bits = _draw_noise_bits(
                image_ops.derive_seed(parameter_seed, "normal"), count, height, width, channels
            )
            return image_ops.maybe_jit(_sensor_noise_math, jit)(subset, bits, read_std, shot_gain)

        images = image_ops.apply_to_subset(images, indices, add_noise)

    if config.jpeg_probability > 0.0:
        indices, parameter_seed = component("jpeg", config.jpeg_probability)
        count = tf.shape(indices)[0]
        quality = uniform(parameter_seed, count, config.jpeg_quality_range, "quality")
        selected = tf.scatter_nd(indices[:, tf.newaxis], tf.ones_like(quality), [batch]) > 0.0
        quality = tf.scatter_nd(indices[:, tf.newaxis], tf.round(quality), [batch])
        images = image_ops.maybe_jit(_masked_jpeg_math, jit)(images, quality, selected)
    return images
