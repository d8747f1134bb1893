"""Batch normalisation through TensorFlow's fused kernel.

Keras 3's `BatchNormalization` computes moments and the normalisation as
separate element-wise ops; on the 4-D maps of an iResNet the fused
`FusedBatchNormV3` kernel does the same work in fewer passes over memory
(measured on a 2-core AVX-512 CPU: 1.5x faster forward+backward on a
128x64x64x16 map, and 1.4 s -> 0.9 s for an IR-18 train step under
`mixed_bfloat16`). Under mixed precision it takes bf16/fp16 activations and
keeps statistics and parameters in float32.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="catface")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` on the fused TensorFlow kernel.

    Same arguments, weights and semantics as the Keras layer (the moving
    variance is updated with the unbiased batch variance, as PyTorch does).
    The fused path serves 4-D channels-last inputs without mask, renorm or
    synchronisation; anything else falls back to the Keras implementation.

    Call arguments:
        inputs: `(batch, height, width, channels)`.
        training: use batch statistics and update the moving ones.
    """

    def _uses_fused_kernel(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and mask is None
            and not self.synchronized
            and not self.renorm
        )

    def call(self, inputs, training=None, mask=None):
        if not self._uses_fused_kernel(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones((channels,), tf.float32)
        offset = tf.convert_to_tensor(self.beta) if self.center else tf.zeros((channels,), tf.float32)
        inputs = tf.cast(inputs, self.compute_dtype)
        if training and self.trainable:
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=scale,
                offset=offset,
                mean=tf.zeros((0,), tf.float32),
                variance=tf.zeros((0,), tf.float32),
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=True,
            )
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
            return outputs
        outputs, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=scale,
            offset=offset,
            mean=tf.convert_to_tensor(self.moving_mean),
            variance=tf.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=False,
        )
        return outputs


def batch_norm(name, synchronized=False, **kwargs):
    """PyTorch's BatchNorm defaults (momentum 0.1, eps 1e-5), as the iResNets use.

    `synchronized=True` computes batch moments over all replicas of a
    distribution strategy, so that data-parallel training matches one device.
    """
    return FusedBatchNormalization(
        momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name, **kwargs
    )
