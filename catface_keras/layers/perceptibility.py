"""Perceptibility attention (Chai et al., CVPR 2023): weigh the face regions that carry identity."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="catface")
class PerceptibilityAttention(keras.layers.Layer):
    """A spatial attention map from the features, applied as `F * (1 + a)`.

    a = sigmoid(conv1x1(relu(conv1x1(F))))  `(batch, H, W, 1)`: a small
    bottleneck (C -> max(C // reduction, 1) -> 1) scores each position; the
    map re-weights F. The residual form (1 + a) is this package's choice, so
    that a freshly initialised layer leaves the features' scale about the
    same. Trained end to end by the FR loss (the paper's attention follows
    the recognizable regions because that lowers the FR loss).

    Returns:
        `(weighted, attention)`: `(batch, H, W, C)` and `(batch, H, W, 1)`.
    """

    def __init__(self, reduction=8, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"`reduction` must be a positive int. Received: reduction={reduction!r}")
        self.reduction = reduction

    def build(self, input_shape):
        channels = input_shape[-1]
        self.hidden = keras.layers.Conv2D(max(channels // self.reduction, 1), 1, activation="relu",
                                          name="hidden", dtype=self.dtype_policy)
        self.score = keras.layers.Conv2D(1, 1, name="score", dtype=self.dtype_policy)
        self.hidden.build(input_shape)
        self.score.build((*input_shape[:-1], max(channels // self.reduction, 1)))

    def call(self, inputs):
        attention = ops.sigmoid(self.score(self.hidden(inputs)))
        return inputs * (1.0 + attention), attention

    def compute_output_spec(self, inputs):
        return (
            keras.KerasTensor(inputs.shape, dtype=self.compute_dtype),
            keras.KerasTensor((*inputs.shape[:-1], 1), dtype=self.compute_dtype),
        )

    def get_config(self):
        config = super().get_config()
        config["reduction"] = self.reduction
        return config
