"""CBAM (Woo et al., ECCV 2018), the block attention of A-SKD's CBAM-iResNet."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="catface")
class CBAM(keras.layers.Layer):
    """Channel then spatial attention, returning the maps before their sigmoid.

    With x of shape `(batch, H, W, C)`:

        channel_logits = MLP(avgpool(x)) + MLP(maxpool(x))        (batch, C)
        x' = x * sigmoid(channel_logits)
        spatial_logits = conv_k([mean_c(x'), max_c(x')])          (batch, H, W, 1)
        out = x' * sigmoid(spatial_logits)

    The MLP (C -> max(C // reduction, 1) -> C, ReLU between, with biases) is
    shared by the two pooled vectors; the conv has one output channel, "same"
    padding and no bias. A-SKD (docs/PAPER.md section 9)
    distils the two logit maps, which is why they are returned.

    Args:
        reduction: channel reduction of the MLP (16).
        spatial_kernel_size: side of the spatial conv (7, CBAM's default).

    Returns:
        `(out, channel_logits, spatial_logits)` of shapes `(batch, H, W, C)`,
        `(batch, C)` and `(batch, H, W, 1)`; the logits are float32.
    """

    def __init__(self, reduction=16, spatial_kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("reduction", reduction), ("spatial_kernel_size", spatial_kernel_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        self.reduction = reduction
        self.spatial_kernel_size = spatial_kernel_size

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "CBAM expects (batch, H, W, C) with a known channel count. "
                f"Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        hidden = max(channels // self.reduction, 1)
        self.hidden_dense = keras.layers.Dense(
            hidden, activation="relu", name="mlp_hidden", dtype=self.dtype_policy
        )
        self.output_dense = keras.layers.Dense(channels, name="mlp_output", dtype=self.dtype_policy)
        self.hidden_dense.build((None, channels))
        self.output_dense.build((None, hidden))
        self.spatial_conv = keras.layers.Conv2D(
            1, self.spatial_kernel_size, padding="same", use_bias=False, name="spatial_conv",
            dtype=self.dtype_policy,
        )
        self.spatial_conv.build((None, input_shape[1], input_shape[2], 2))

    def _mlp(self, pooled):
        return self.output_dense(self.hidden_dense(pooled))

    def call(self, inputs):
        average = ops.mean(inputs, axis=(1, 2))
        maximum = ops.max(inputs, axis=(1, 2))
        channel_logits = ops.cast(self._mlp(average) + self._mlp(maximum), "float32")
        weighted = inputs * ops.cast(ops.sigmoid(channel_logits), inputs.dtype)[:, None, None, :]
        pooled = ops.concatenate(
            [
                ops.mean(weighted, axis=-1, keepdims=True),
                ops.max(weighted, axis=-1, keepdims=True),
            ],
            axis=-1,
        )
        spatial_logits = ops.cast(self.spatial_conv(pooled), "float32")
        outputs = weighted * ops.cast(ops.sigmoid(spatial_logits), inputs.dtype)
        return outputs, channel_logits, spatial_logits

    def compute_output_spec(self, inputs):
        batch, height, width, channels = inputs.shape
        return (
            keras.KerasTensor(inputs.shape, dtype=self.compute_dtype),
            keras.KerasTensor((batch, channels), dtype="float32"),
            keras.KerasTensor((batch, height, width, 1), dtype="float32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"reduction": self.reduction, "spatial_kernel_size": self.spatial_kernel_size}
        )
        return config
