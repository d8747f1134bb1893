"""`DegradationConfig`: every knob of the LQ synthesis (docs/PAPER.md section 6), validated once.

Free of TensorFlow (it lives outside `catface_keras.degrade`, whose package imports
TensorFlow) so that `catface_keras.config` can read the `degrade:` section of a YAML
file without loading it; `catface_keras.degrade.DegradationConfig` is the same class.
"""

import dataclasses
import math

# Lengths and sizes below are in pixels of a 112-px face crop and scale with the actual image
# (see `image_ops.REFERENCE_SIZE`); noise, JPEG quality and exposure are resolution-free.


@dataclasses.dataclass(frozen=True)
class DegradationConfig:
    """Parameters of `catface_keras.degrade.degrade`.

    Each image of a batch is degraded by one family: atmospheric turbulence (a share
    `turbulence_fraction` of the batch) or camera styles (the rest). Parameters are drawn per
    image, uniformly from the `*_range` intervals. A camera-style image gets each camera
    component with its `*_probability`, applied in the physical order
    exposure -> motion blur -> low resolution -> sensor noise -> JPEG.

    Attributes:
        turbulence_fraction: share of each batch degraded by turbulence, in [0, 1].
        d_over_r0_range: turbulence strength D/r0 (aperture over Fried parameter).
        tilt_correlation: tilt correlation length (aperture footprint) as a fraction of the image.
        diffraction_pixels: lambda/D in pixels of a 112-px crop; sets the turbulence pixel scale.
        blur_variation: log-normal spread of the turbulence blur across the image.
        exposure_probability, exposure_stops_range: exposure change in stops (EV); negative is
            under-exposure.
        motion_blur_probability, motion_blur_length_range: blur length in pixels; the direction
            is uniform.
        low_resolution_probability, low_resolution_size_range: size of the longer side after
            downscaling, before upscaling back.
        noise_probability, read_noise_range, shot_noise_range: sensor noise, Gaussian read noise
            std and Poisson gain (variance per unit of signal), in [0, 255] pixel units.
        jpeg_probability, jpeg_quality_range: JPEG quality (IJG scale, 1 to 100).
        jit_compile: compile the per-family math with XLA (much faster on CPU and GPU; the first
            call per batch shape compiles for a few seconds).

    Example:
    >>> config = DegradationConfig(turbulence_fraction=0.3, jpeg_quality_range=(20, 50))
    >>> DegradationConfig.from_dict(config.to_dict()) == config
    True
    """

    turbulence_fraction: float = 0.5
    d_over_r0_range: tuple[float, float] = (0.25, 2.0)
    tilt_correlation: float = 0.15
    diffraction_pixels: float = 4.0
    blur_variation: float = 0.5
    exposure_probability: float = 0.3
    exposure_stops_range: tuple[float, float] = (-2.0, 1.5)
    motion_blur_probability: float = 0.4
    motion_blur_length_range: tuple[float, float] = (3.0, 15.0)
    low_resolution_probability: float = 0.5
    low_resolution_size_range: tuple[float, float] = (14.0, 56.0)
    noise_probability: float = 0.5
    read_noise_range: tuple[float, float] = (1.0, 10.0)
    shot_noise_range: tuple[float, float] = (0.0, 1.0)
    jpeg_probability: float = 0.7
    jpeg_quality_range: tuple[float, float] = (10.0, 70.0)
    jit_compile: bool = True

    def __post_init__(self):
        values = dataclasses.asdict(self)
        check_values(values)
        for name, _, _ in _RANGES:
            # Frozen dataclass: normalise lists (from YAML) to float tuples.
            object.__setattr__(self, name, tuple(float(bound) for bound in values[name]))

    @classmethod
    def from_dict(cls, values, key_prefix=""):
        """Build from a plain dict (e.g. parsed YAML); unknown keys are an error.

        `key_prefix` (e.g. `"degrade."`) is put before the field names in error messages.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown DegradationConfig fields: {[key_prefix + name for name in unknown]}. "
                f"Known fields: {sorted(known)}. Received: values={values}"
            )
        check_values(values, key_prefix)
        return cls(**values)

    def to_dict(self):
        """Plain dict of JSON/YAML types (ranges as lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }


_PROBABILITIES = [
    ("turbulence_fraction", 0.0, 1.0),
    ("exposure_probability", 0.0, 1.0),
    ("motion_blur_probability", 0.0, 1.0),
    ("low_resolution_probability", 0.0, 1.0),
    ("noise_probability", 0.0, 1.0),
    ("jpeg_probability", 0.0, 1.0),
]
_SCALARS = [
    ("tilt_correlation", 1.0 / 32.0, 2.0),
    ("diffraction_pixels", 1e-3, 16.0),
    ("blur_variation", 0.0, 2.0),
]
_RANGES = [
    ("d_over_r0_range", 0.0, 10.0),
    ("exposure_stops_range", -6.0, 6.0),
    ("motion_blur_length_range", 0.0, 56.0),
    ("low_resolution_size_range", 1.0, 112.0),
    ("read_noise_range", 0.0, 100.0),
    ("shot_noise_range", 0.0, 20.0),
    ("jpeg_quality_range", 1.0, 100.0),
]


def check_values(values, key_prefix=""):
    """Raises `ValueError` naming `key_prefix + name` for the first value out of its range.

    Only the fields present in `values` are checked (the defaults are valid).
    """
    for name, low, high in _PROBABILITIES + _SCALARS:
        if name in values:
            _check_number(key_prefix + name, values[name], low, high)
    for name, low, high in _RANGES:
        if name in values:
            _check_range(key_prefix + name, values[name], low, high)
    if "jit_compile" in values and not isinstance(values["jit_compile"], bool):
        name = key_prefix + "jit_compile"
        raise ValueError(f"`{name}` must be a bool. Received: {name}={values['jit_compile']!r}")


def _check_number(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be in [{low}, {high}]. Received: {name}={value!r}")


def _check_range(name, value, low, high):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"`{name}` must be a pair (low, high). Received: {name}={value!r}")
    for bound in value:
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or math.isnan(bound):
            raise ValueError(f"`{name}` must hold two numbers. Received: {name}={value!r}")
    if not low <= value[0] <= value[1] <= high:
        raise ValueError(
            f"`{name}` must satisfy {low} <= low <= high <= {high}. Received: {name}={value!r}"
        )
