"""`degrade`: the one entry point of LQ synthesis, mixing turbulence and camera styles.

docs/PAPER.md section 6: in each batch about half of the LQ images come from atmospheric
turbulence and half from unconstrained-camera styles. `degrade` splits every batch at random by
`DegradationConfig.turbulence_fraction` and degrades each part by its family, with parameters
drawn per image.

Determinism. The output is a pure function of (images, seed, config): the same inputs give the
same LQ images bit for bit, on any `tf.data` parallelism, because all randomness comes from
stateless ops driven by `seed`. What holds per image:
- every image gets its own family, parameters and noise, so a batch of one image repeated gives
  differently degraded copies;
- an image's result depends on its position and on the batch size (families and camera
  components are assigned by a random split of the batch, and random fields are drawn for each
  sub-batch), so degrading images one at a time with seeds `element_seed(seed, i)` gives other,
  identically distributed, results. Degrade single examples before batching when a result must
  not depend on batching (slower: no batched math).
Results differ between `jit_compile=True` and `False` and between devices (XLA fuses and
reorders floating-point operations); each setting is deterministic on its own.
"""

import tensorflow as tf

from catface_keras.degrade import image_ops
from catface_keras.degrade.camera import sample_camera_styles
from catface_keras.degrade.config import DegradationConfig

# `from catface_keras.degrade import turbulence` would give the function, which the package
# re-exports under the module's name; import from the module path instead.
from catface_keras.degrade.turbulence import sample_turbulence


@image_ops.no_autograph
def degrade(images, seed, config=None):
    """Turn a batch of HQ faces into LQ ones: turbulence for a share of the batch, camera
    styles for the rest.

    Args:
        images: `(batch, height, width, channels)` (or one `(height, width, channels)` image),
            uint8 or float (16/32/64-bit) pixel values in [0, 255], 1 or 3 channels, static
            height and width.
        seed: `[2]` int32/int64 tensor; see `element_seed` for per-batch seeds in `tf.data`.
        config: a `DegradationConfig` (defaults: half turbulence with D/r0 in [0.25, 2]).

    Returns:
        Same shape and dtype as `images`, values in [0, 255].

    Example:
    >>> lq = degrade(tf.zeros([8, 112, 112, 3], tf.uint8), seed=[0, 1])
    >>> lq.shape, lq.dtype
    (TensorShape([8, 112, 112, 3]), tf.uint8)
    """
    config = DegradationConfig() if config is None else config
    if not isinstance(config, DegradationConfig):
        raise ValueError(
            f"`config` must be a DegradationConfig or None. Received: config={config!r}"
        )
    images, restore = image_ops.prepare_images(images)
    seed = image_ops.check_seed(seed)
    batch = tf.shape(images)[0]
    turbulence_seed = image_ops.derive_seed(seed, "turbulence")
    camera_seed = image_ops.derive_seed(seed, "camera")
    if config.turbulence_fraction == 1.0:
        return restore(sample_turbulence(images, turbulence_seed, config))
    if config.turbulence_fraction == 0.0:
        return restore(sample_camera_styles(images, camera_seed, config))
    family_seed = image_ops.derive_seed(seed, "family")
    turbulence_count = image_ops.stochastic_count(config.turbulence_fraction, batch, family_seed)
    turbulence_indices, camera_indices = image_ops.random_split(
        batch, turbulence_count, tf.random.experimental.stateless_fold_in(family_seed, 1)
    )

    def degrade_part(indices, family, family_seed):
        part = tf.gather(images, indices)
        # Image ops reject empty batches: skip a family that got no image.
        return tf.cond(
            tf.size(indices) > 0, lambda: family(part, family_seed, config), lambda: part
        )

    parts = [
        degrade_part(turbulence_indices, sample_turbulence, turbulence_seed),
        degrade_part(camera_indices, sample_camera_styles, camera_seed),
    ]
    result = tf.dynamic_stitch([turbulence_indices, camera_indices], parts)
    return restore(tf.ensure_shape(result, images.shape))
