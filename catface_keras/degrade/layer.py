"""`Degradation`: `degrade` as a Keras layer, for LQ synthesis on the accelerator."""

import keras
import tensorflow as tf

from catface_keras.degrade.config import DegradationConfig
from catface_keras.degrade.mix import degrade


@keras.saving.register_keras_serializable(package="catface")
class Degradation(keras.layers.Layer):
    """Degrade HQ faces to LQ ones (turbulence / camera-style mix) while training.

    The layer applies `catface_keras.degrade.degrade` when `training=True` (or always, with
    `apply_at_inference=True`) and is the identity otherwise. Every call draws a fresh seed from
    the layer's `keras.random.SeedGenerator`, so a model restored with the same `seed` replays
    the same degradations. It needs the TensorFlow backend (the degradations are TensorFlow
    ops) and does not support XLA compilation of the enclosing model (sub-batch sizes are
    data-dependent); its own math is still XLA-compiled when `jit_compile` is set in the config.

    Args:
        degradation_config: a `DegradationConfig` or its `to_dict()`; None for the defaults.
        seed: int seed of the layer's seed generator, or None for a random one.
        apply_at_inference: also degrade when `training` is False (e.g. to build LQ test sets).
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape: `(batch, height, width, channels)`, channels 1 or 3, pixel values in
    [0, 255], uint8 or float. Output shape: the same, same dtype.

    Example:
    >>> layer = Degradation(seed=0)
    >>> lq = layer(tf.zeros([4, 112, 112, 3]), training=True)
    """

    def __init__(self, degradation_config=None, seed=None, apply_at_inference=False, **kwargs):
        super().__init__(**kwargs)
        if degradation_config is None:
            degradation_config = DegradationConfig()
        elif isinstance(degradation_config, dict):
            degradation_config = DegradationConfig.from_dict(degradation_config)
        elif not isinstance(degradation_config, DegradationConfig):
            raise ValueError(
                "`degradation_config` must be a DegradationConfig, a dict or None. "
                f"Received: degradation_config={degradation_config!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.degradation_config = degradation_config
        self.seed = seed
        self.apply_at_inference = bool(apply_at_inference)
        self.seed_generator = keras.random.SeedGenerator(seed, name="degradation_seed")
        # Sub-batches of data-dependent size: the enclosing model cannot be XLA-compiled whole.
        self.supports_jit = False

    def call(self, images, training=None):
        if not (training or self.apply_at_inference):
            return images
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        # Under a distribution strategy every replica steps the same seed generator: fold the
        # replica in, so that replicas degrade their shards independently.
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
            seed = tf.random.experimental.stateless_fold_in(seed, replica)
        return degrade(images, seed, self.degradation_config)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "degradation_config": self.degradation_config.to_dict(),
                "seed": self.seed,
                "apply_at_inference": self.apply_at_inference,
            }
        )
        return config
