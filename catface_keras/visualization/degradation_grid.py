"""A picture grid of the LQ degradations applied to a face (`catface degrade`).

Rows are degradation families (turbulence, sensor noise, low resolution, motion blur, JPEG,
exposure, and the training mix), columns increasing strength (turbulence D/r0 0.25, 0.5, 1, 2),
after the untouched input in the first column. The layout is `grids.labelled_grid`'s, each
cell labelled with its strength.
"""

import numpy as np
import tensorflow as tf

from catface_keras import degrade
from catface_keras.visualization.grids import labelled_grid

# Strength levels per family, for a 112-px crop (lengths and sizes scale with the face).
TURBULENCE_LEVELS = (0.25, 0.5, 1.0, 2.0)
NOISE_LEVELS = ((3.0, 0.25), (6.0, 0.5), (12.0, 1.0), (24.0, 2.0))
LOW_RESOLUTION_LEVELS = (56, 36, 24, 14)
MOTION_BLUR_LEVELS = (3.0, 6.0, 10.0, 15.0)
JPEG_LEVELS = (70, 40, 20, 10)
EXPOSURE_LEVELS = (-1.0, -2.0, 1.0, 1.5)
MIX_SAMPLES = 4


def degradation_rows(face, seed, config=None):
    """`[(family, [(label, image), ...]), ...]`: each family at increasing strength.

    Args:
        face: `(S, S, 3)` uint8 RGB.
        seed: int seed of the random parts.
        config: the `DegradationConfig` of the "mix" row (default: the defaults, without XLA).
    """
    config = degrade.DegradationConfig(jit_compile=False) if config is None else config
    scale = face.shape[0] / 112.0
    batch = tf.constant(np.repeat(face[np.newaxis], 4, axis=0))
    seed = tf.constant([seed, 0], tf.int64)

    def row(images, labels):
        return list(zip(labels, np.asarray(images)))

    sizes = [round(level * scale) for level in LOW_RESOLUTION_LEVELS]
    lengths = [level * scale for level in MOTION_BLUR_LEVELS]
    return [
        ("turbulence", row(degrade.turbulence(batch, seed, TURBULENCE_LEVELS),
                           [f"D/r0 {level:g}" for level in TURBULENCE_LEVELS])),
        ("sensor noise", row(degrade.sensor_noise(batch, seed, [r for r, _ in NOISE_LEVELS],
                                                  [s for _, s in NOISE_LEVELS]),
                             [f"std {r:g}, gain {s:g}" for r, s in NOISE_LEVELS])),
        ("low resolution", row(degrade.low_resolution(batch, sizes),
                               [f"{size} px" for size in sizes])),
        ("motion blur", row(degrade.motion_blur(batch, seed, lengths, angle=np.pi / 6),
                            [f"{length:g} px" for length in lengths])),
        ("JPEG", row(degrade.jpeg(batch, JPEG_LEVELS),
                     [f"quality {level}" for level in JPEG_LEVELS])),
        ("exposure", row(degrade.exposure(batch, EXPOSURE_LEVELS),
                         [f"{level:+g} EV" for level in EXPOSURE_LEVELS])),
        ("mix", row(degrade.degrade(batch, seed, config),
                    [f"sample {index + 1}" for index in range(MIX_SAMPLES)])),
    ]


def degradation_grid(face, seed, config=None):
    """The labelled grid for one face: `grids.grid_size(7, 5, S) + (3,)` uint8 RGB."""
    rows = degradation_rows(face, seed, config)
    cells = [[face] + [image for _, image in row] for _, row in rows]
    headers = [["input"] + [label for label, _ in row] for _, row in rows]
    return labelled_grid(cells, [family for family, _ in rows], headers, face.shape[0])
