"""Low-quality face synthesis (docs/PAPER.md section 6): turbulence and camera-style degradations.

    from catface_keras import degrade
    lq = degrade.degrade(hq_batch, seed=[0, 1])          # the mix, per-image parameters
    lq = degrade.turbulence(hq_batch, seed, d_over_r0=1.0)  # one family, explicit strength

All functions are pure TensorFlow with stateless randomness, so they run in `tf.data` on CPU
and, through the `Degradation` layer, on an accelerator.
"""

from catface_keras.degrade.camera import exposure
from catface_keras.degrade.camera import jpeg
from catface_keras.degrade.camera import low_resolution
from catface_keras.degrade.camera import motion_blur
from catface_keras.degrade.camera import sensor_noise
from catface_keras.degrade.config import DegradationConfig
from catface_keras.degrade.image_ops import element_seed
from catface_keras.degrade.layer import Degradation
from catface_keras.degrade.mix import degrade
from catface_keras.degrade.turbulence import tilt_field
from catface_keras.degrade.turbulence import turbulence

__all__ = [
    "Degradation",
    "DegradationConfig",
    "degrade",
    "element_seed",
    "exposure",
    "jpeg",
    "low_resolution",
    "motion_blur",
    "sensor_noise",
    "tilt_field",
    "turbulence",
]
