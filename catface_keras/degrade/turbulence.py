"""Atmospheric turbulence: a Kolmogorov tilt warp plus spatially varying short-exposure blur.

The paper (docs/PAPER.md section 6) degrades half of the LQ training faces with the learned
phase-to-space (P2S) simulator of Mao, Chimitt and Chan (ICCV 2021), strength D/r0 drawn from
[0.25, 2]. This module is an analytic, dependency-free stand-in that keeps the two effects P2S
models and their scaling with D/r0 (D: aperture diameter, r0: Fried parameter of the path).

The physics it approximates
---------------------------
Image sampling. One unit of angle, lambda/D (the diffraction limit), spans `diffraction_pixels`
pixels of a 112-px face crop (2 would be Nyquist sampling of the capturing optics; the default 4
says that the face was captured at about half the crop's resolution, as LQ faces are, and
upsampled by the alignment). All pixel quantities scale with the crop size.

Tilt (geometric distortion). Each image point sees the wavefront through the aperture, tilted by
the turbulence along its line of sight. The one-axis Zernike-tilt variance is Fried's
    sigma_tilt^2 = 0.182 (D/r0)^(5/3) (lambda/D)^2
(Noll 1976; 0.76 lambda/D RMS at D/r0 = 2). Its spatial correlation follows the single-layer
(frozen phase screen) picture: the tilt at image point x is the aperture-weighted Z-tilt of a
Kolmogorov phase screen (power spectrum ~ kappa^(-11/3)) around the point where x's line of sight
crosses the layer. The tilt field is then a curl-free Gaussian field with spectrum
    |t(kappa)|^2 ~ kappa^(-11/3) [J2(kappa R) / (kappa R)]^2,   t_x ~ i kappa_x / |kappa| ...
where 2R is the diameter of the aperture's footprint at the layer as seen in the image (the
`tilt_correlation` parameter, a fraction of the image's longer side): the tilt correlation
length. This is the spectrum behind the I0/I2 Bessel integrals of the Z-tilt correlation used by
Chimitt & Chan (2020) and P2S. Being curl-free, the field makes the longitudinal and transverse
tilt differences differ as differential-image-motion (DIMM) theory says they do (P2S draws the
two components independently, which makes them equal; the tests check the DIMM ratio). The field is
drawn by filtering complex white noise on a periodic grid twice the image's size (so opposite
edges stay independent), normalised to Fried's variance, and bilinearly upsampled; the image is
warped by it with a bilinear gather.

Blur. Once tilt is removed, a short exposure is blurred by the higher-order aberrations.
Fried's short-exposure OTF (near field) is
    OTF(f) = OTF_diffraction(f) exp(-3.44 (D/r0)^(5/3) nu^(5/3) (1 - nu^(1/3))),   nu = f lambda/D.
We use the Gaussian with the same peak (Strehl-equivalent width), sigma^2 = 1 / (2 pi int OTF),
which is 0.450 lambda/D for diffraction alone, 0.490 at D/r0 = 1 and 0.586 at D/r0 = 2. The HQ
crop already went through the same optics, so only the excess over diffraction,
sigma^2 - sigma_diffraction^2, is added: zero strength is the identity. The excess blur varies
across the field (anisoplanatism): its variance is multiplied by a log-normal map
exp(b m(x) - b^2 / 2) with m a unit Gaussian field correlated like the tilt and
b = `blur_variation`. Blur of any per-pixel width is interpolated, in variance, between the
sharp image and a 2x box pyramid (see `image_ops.blur_pyramid`), whose top level caps the
width (sigma ~ 2 px below 64 px, 4 px up to 127 px, 8 px above). The image is warped first and
blurred second (P2S blurs first; the orders differ only by the tilt's change across one PSF).

What it leaves out relative to P2S
----------------------------------
- PSF shape: P2S maps 36 spatially correlated Zernike coefficients per pixel through a learned
  network onto a 100-element PSF basis, which gives asymmetric, comet- and speckle-like local
  PSFs. Here every local PSF is an isotropic Gaussian whose width fluctuates log-normally.
- Path profile: P2S/Chimitt-Chan integrate the tilt correlation over a Cn^2 profile along the
  path; here a single layer, so one correlation length (`tilt_correlation`) stands for it.
- Inter-modal correlation between tilt and higher-order modes (independent here), temporal
  correlation between frames, scintillation and polychromatic effects are not modelled.
- The tilt grid is periodic with twice the image's extent, which slightly under-represents
  the lowest spatial frequencies (nearly global shifts, irrelevant after face alignment).
"""

import functools
import math

import numpy as np
import tensorflow as tf

from catface_keras.degrade import image_ops

# One-axis Zernike-tilt variance per (D/r0)^(5/3), in (lambda/D)^2 (Noll 1976, Fried 1965).
Z_TILT_VARIANCE = 0.182
# Fried's short-exposure structure-function constant.
SHORT_EXPOSURE_CONSTANT = 3.44
# Strehl-equivalent Gaussian width of the diffraction-limited (Airy) PSF, lambda/D units.
DIFFRACTION_SIGMA = math.sqrt(2.0) / math.pi

DEFAULT_TILT_CORRELATION = 0.15
DEFAULT_DIFFRACTION_PIXELS = 4.0
DEFAULT_BLUR_VARIATION = 0.5

# Quadrature points for the short-exposure OTF integral.
_OTF_POINTS = 256


def tilt_rms(d_over_r0):
    """One-axis RMS tilt in units of lambda/D: sqrt(0.182) (D/r0)^(5/6)."""
    d_over_r0 = tf.maximum(tf.convert_to_tensor(d_over_r0, tf.float32), 0.0)
    return math.sqrt(Z_TILT_VARIANCE) * tf.pow(d_over_r0, 5.0 / 6.0)


def short_exposure_sigma(d_over_r0):
    """Strehl-equivalent Gaussian width of Fried's short-exposure PSF, in units of lambda/D.

    Args:
        d_over_r0: float tensor of any shape, D/r0 >= 0.

    Returns:
        float32 tensor of the same shape; `DIFFRACTION_SIGMA` at D/r0 = 0.
    """
    d_over_r0 = tf.maximum(tf.convert_to_tensor(d_over_r0, tf.float32), 0.0)
    nu = (np.arange(_OTF_POINTS) + 0.5) / _OTF_POINTS
    diffraction_otf = 2.0 / np.pi * (np.arccos(nu) - nu * np.sqrt(1.0 - nu**2))
    structure = nu ** (5.0 / 3.0) * (1.0 - nu ** (1.0 / 3.0))
    strength = SHORT_EXPOSURE_CONSTANT * tf.pow(d_over_r0, 5.0 / 3.0)[..., tf.newaxis]
    otf = tf.constant(diffraction_otf, tf.float32) * tf.exp(
        -strength * tf.constant(structure, tf.float32)
    )
    # Integral of the OTF over the frequency plane = peak of the PSF.
    peak = 2.0 * np.pi * tf.reduce_sum(otf * tf.constant(nu, tf.float32), axis=-1) / _OTF_POINTS
    return tf.math.rsqrt(2.0 * np.pi * peak)


def excess_blur_sigma(d_over_r0):
    """Short-exposure blur beyond diffraction, sqrt(sigma_SE^2 - sigma_diffraction^2), lambda/D."""
    # The diffraction width from the same quadrature, so that D/r0 = 0 gives exactly zero.
    variance = tf.square(short_exposure_sigma(d_over_r0)) - tf.square(short_exposure_sigma(0.0))
    return tf.sqrt(tf.maximum(variance, 0.0))


def tilt_grid(height, width, tilt_correlation):
    """Geometry of the tilt grid: `(cell, grid, footprint)`.

    The field is drawn on a periodic `grid x grid` lattice of `cell`-pixel cells covering twice
    the image's longer side (so that opposite edges stay independent), with about four cells
    per aperture footprint; `footprint` is the footprint (correlation length) in cells.
    """
    longer = max(height, width)
    cell = max(1, int(tilt_correlation * longer / 4.0))
    return cell, 2 * math.ceil(longer / cell), tilt_correlation * longer / cell


@functools.cache
def tilt_filters(grid, footprint):
    """Fourier filters of the tilt field and of the blur-variation map (NumPy, built once).

    Args:
        grid: lattice points per side (lengths below are in lattice cells).
        footprint: aperture footprint (tilt correlation length) in cells.

    Returns:
        `(filter_y, filter_x, filter_scalar)`, complex128 `(grid, grid)` arrays normalised so that
        the real part of `ifft2d(filter * w)`, with `w` complex white noise of unit-variance real
        and imaginary parts, has unit variance (likewise the imaginary part for `filter_scalar`).
    """
    kappa_1d = 2.0 * np.pi * np.fft.fftfreq(grid)
    kappa_y, kappa_x = np.meshgrid(kappa_1d, kappa_1d, indexing="ij")
    kappa = np.hypot(kappa_y, kappa_x)
    z = kappa * footprint / 2.0
    safe_z = np.where(z > 0.0, z, 1.0)
    safe_kappa = np.where(kappa > 0.0, kappa, 1.0)
    # Zernike-tilt aperture filter J2(z) / z times the Kolmogorov amplitude kappa^(-11/6).
    amplitude = np.where(z > 0.0, _bessel_j2(safe_z) / safe_z * safe_kappa ** (-11.0 / 6.0), 0.0)
    # Drop the Nyquist row and column, whose sign is ambiguous on an even grid, so that the
    # filters are exactly odd/even and the three fields below are exactly independent.
    amplitude[grid // 2, :] = 0.0
    amplitude[:, grid // 2] = 0.0
    filter_y = 1j * kappa_y / safe_kappa * amplitude
    filter_x = 1j * kappa_x / safe_kappa * amplitude
    filter_scalar = amplitude.astype(np.complex128)
    tilt_norm = grid**2 / np.sqrt(np.sum(np.abs(filter_x) ** 2))
    scalar_norm = grid**2 / np.sqrt(np.sum(np.abs(filter_scalar) ** 2))
    return filter_y * tilt_norm, filter_x * tilt_norm, filter_scalar * scalar_norm


def _bessel_j2(z):
    # J2(z) = (1/pi) int_0^pi cos(2 t - z sin t) dt; the trapezoid rule on this periodic
    # integrand is exact to machine precision for the arguments used (z < 15).
    t = np.linspace(0.0, np.pi, 129)
    values = np.cos(2.0 * t - z[..., np.newaxis] * np.sin(t))
    return np.trapezoid(values, t, axis=-1) / np.pi


def _draw_white_noise(seed, batch, grid):
    """Complex white noise for the tilt grid, as `(batch, grid, grid, 2)` float32."""
    return tf.random.stateless_normal([batch, grid, grid, 2], seed)


def _fields(white_noise, d_over_r0, height, width, tilt_correlation, diffraction_pixels):
    """Tilt (dy, dx) in pixels and the unit blur-variation map, all `(batch, height, width)`."""
    cell, grid, footprint = tilt_grid(height, width, tilt_correlation)
    filter_y, filter_x, filter_scalar = tilt_filters(grid, footprint)
    noise = tf.complex(white_noise[..., 0], white_noise[..., 1])
    tilt_y = tf.math.real(tf.signal.ifft2d(noise * tf.constant(filter_y, tf.complex64)))
    tilt_x = tf.math.real(tf.signal.ifft2d(noise * tf.constant(filter_x, tf.complex64)))
    variation = tf.math.imag(tf.signal.ifft2d(noise * tf.constant(filter_scalar, tf.complex64)))
    fields = tf.stack([tilt_y, tilt_x, variation], axis=-1)
    # The grid spans twice the longer side: its first half covers the image.
    fields = image_ops.linear_upsample(fields[:, : grid // 2, : grid // 2], cell)
    fields = fields[:, :height, :width]
    pixels = diffraction_pixels * image_ops.scale_for(height, width)
    tilt_pixels = tilt_rms(d_over_r0) * pixels
    displacement = fields[..., :2] * tilt_pixels[:, tf.newaxis, tf.newaxis, tf.newaxis]
    return displacement, fields[..., 2:]


def _turbulence_math(
    images,
    white_noise,
    d_over_r0,
    tilt_correlation,
    diffraction_pixels,
    blur_variation,
):
    _, height, width, _ = images.shape
    displacement, variation = _fields(
        white_noise, d_over_r0, height, width, tilt_correlation, diffraction_pixels
    )
    pixels = diffraction_pixels * image_ops.scale_for(height, width)
    blur_variance = tf.square(excess_blur_sigma(d_over_r0) * pixels)
    variance_map = blur_variance[:, tf.newaxis, tf.newaxis, tf.newaxis] * tf.exp(
        blur_variation * variation - 0.5 * blur_variation**2
    )
    # Warp first: gathering from the input keeps XLA from recomputing the blur inside each of
    # the warp's four gathers (a 1.5x slowdown otherwise).
    images = image_ops.warp(images, displacement)
    levels = max(1, min(4, int(math.log2(min(height, width) / 8))))
    blurred, variances = image_ops.blur_pyramid(images, levels)
    return image_ops.variance_blend(images, blurred, variances, variance_map)


def _check_turbulence_args(tilt_correlation, diffraction_pixels, blur_variation):
    if not 1.0 / 32.0 <= tilt_correlation <= 2.0:
        raise ValueError(
            "`tilt_correlation` (aperture footprint / image size) must be in [1/32, 2]. "
            f"Received: tilt_correlation={tilt_correlation}"
        )
    if not 0.0 < diffraction_pixels <= 16.0:
        raise ValueError(
            "`diffraction_pixels` (lambda/D in pixels of a 112-px crop) must be in (0, 16]. "
            f"Received: diffraction_pixels={diffraction_pixels}"
        )
    if not 0.0 <= blur_variation <= 2.0:
        raise ValueError(
            f"`blur_variation` must be in [0, 2]. Received: blur_variation={blur_variation}"
        )


@image_ops.no_autograph
def tilt_field(
    seed,
    batch,
    height,
    width,
    d_over_r0,
    tilt_correlation=DEFAULT_TILT_CORRELATION,
    diffraction_pixels=DEFAULT_DIFFRACTION_PIXELS,
):
    """The random tilt displacement field that `turbulence` warps by (same seed, same field).

    Args:
        seed: `[2]` int seed.
        batch, height, width: Python ints.
        d_over_r0: scalar or `(batch,)`, turbulence strength D/r0 >= 0.
        tilt_correlation: aperture footprint (the tilt correlation length) as a fraction of the
            image's longer side.
        diffraction_pixels: lambda/D in pixels of a 112-px crop.

    Returns:
        float32 `(batch, height, width, 2)`: (dy, dx) in pixels.
    """
    _check_turbulence_args(tilt_correlation, diffraction_pixels, 0.0)
    seed = image_ops.check_seed(seed)
    d_over_r0 = tf.maximum(image_ops.per_image(d_over_r0, batch, "d_over_r0"), 0.0)
    _, grid, _ = tilt_grid(height, width, tilt_correlation)
    white_noise = _draw_white_noise(image_ops.derive_seed(seed, "tilt"), batch, grid)
    displacement, _ = _fields(
        white_noise, d_over_r0, height, width, tilt_correlation, diffraction_pixels
    )
    return displacement


@image_ops.no_autograph
def turbulence(
    images,
    seed,
    d_over_r0,
    tilt_correlation=DEFAULT_TILT_CORRELATION,
    diffraction_pixels=DEFAULT_DIFFRACTION_PIXELS,
    blur_variation=DEFAULT_BLUR_VARIATION,
    jit_compile=False,
):
    """Degrade images by atmospheric turbulence of strength D/r0 (see the module docstring).

    Args:
        images: `(batch, height, width, channels)` (or one `(height, width, channels)` image),
            uint8 or float in [0, 255], 1 or 3 channels.
        seed: `[2]` int seed; the same seed gives the same output bit for bit.
        d_over_r0: scalar or `(batch,)`, D/r0 >= 0; 0 returns the input unchanged.
        tilt_correlation: aperture footprint (tilt correlation length) as a fraction of the
            image's longer side, in [1/32, 2].
        diffraction_pixels: lambda/D in pixels of a 112-px crop.
        blur_variation: log-normal spread of the local blur variance across the image.
        jit_compile: compile the math with XLA (faster for repeated calls at a fixed shape).

    Returns:
        Same shape and dtype as `images`, values in [0, 255].

    Example:
    >>> lq = turbulence(tf.zeros([2, 112, 112, 3]), seed=[1, 2], d_over_r0=[0.5, 2.0])
    """
    _check_turbulence_args(tilt_correlation, diffraction_pixels, blur_variation)
    images, restore = image_ops.prepare_images(images)
    seed = image_ops.check_seed(seed)
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    d_over_r0 = tf.maximum(image_ops.per_image(d_over_r0, batch, "d_over_r0"), 0.0)
    _, grid, _ = tilt_grid(height, width, tilt_correlation)
    white_noise = _draw_white_noise(image_ops.derive_seed(seed, "tilt"), batch, grid)
    math_fn = image_ops.maybe_jit(_turbulence_math, jit_compile)
    return restore(
        math_fn(
            images,
            white_noise,
            d_over_r0,
            float(tilt_correlation),
            float(diffraction_pixels),
            float(blur_variation),
        )
    )


@image_ops.no_autograph
def sample_turbulence(images, seed, config):
    """Degrade float32 images by turbulence with D/r0 drawn per image from the config's range.

    Args:
        images: float32 `(batch, height, width, channels)` in [0, 255] (already prepared).
        seed: int64 `[2]` seed.
        config: a `DegradationConfig`.

    Returns:
        float32 `(batch, height, width, channels)`.
    """
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    low, high = config.d_over_r0_range
    d_over_r0 = tf.random.stateless_uniform(
        [batch], image_ops.derive_seed(seed, "d_over_r0"), low, high
    )
    _, grid, _ = tilt_grid(height, width, config.tilt_correlation)
    white_noise = _draw_white_noise(image_ops.derive_seed(seed, "tilt"), batch, grid)
    math_fn = image_ops.maybe_jit(_turbulence_math, config.jit_compile)
    return math_fn(
        images,
        white_noise,
        d_over_r0,
        config.tilt_correlation,
        config.diffraction_pixels,
        config.blur_variation,
    )
