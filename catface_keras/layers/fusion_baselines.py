"""The simple fusion baselines of the paper's Table II: concatenation, addition, SE.

Like `CATF`, each takes `[fr, sb]`, two `(batch, H, W, C)` maps, and returns
one fused map. The cross-attention and FFM baselines live in
`cross_attention.py` and `ffm.py`.
"""

import keras
from keras import ops

from catface_keras.layers.cross_attention import validate_feature_pair


@keras.saving.register_keras_serializable(package="catface")
class ConcatFusion(keras.layers.Layer):
    """`concat([fr, sb])` along channels: `(batch, H, W, 2C)`."""

    def build(self, input_shape):
        validate_feature_pair("ConcatFusion", input_shape)

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return (*shape[:-1], 2 * shape[-1])


@keras.saving.register_keras_serializable(package="catface")
class AddFusion(keras.layers.Layer):
    """`fr + sb`: `(batch, H, W, C)`."""

    def build(self, input_shape):
        validate_feature_pair("AddFusion", input_shape)

    def call(self, inputs):
        fr, sb = inputs
        return fr + sb

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


@keras.saving.register_keras_serializable(package="catface")
class SEFusion(keras.layers.Layer):
    """Concatenation reweighted per channel by a squeeze-and-excitation block.

        x = concat([fr, sb]);  s = sigmoid(W2 relu(W1 mean_hw(x)));  out = x * s

    Args:
        reduction: ratio of 2C to the bottleneck width (16, as Hu et al.).

    Returns:
        `(batch, H, W, 2C)`.
    """

    def __init__(self, reduction=16, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"`reduction` must be a positive int. Received: reduction={reduction!r}")
        self.reduction = reduction

    def build(self, input_shape):
        shape = validate_feature_pair("SEFusion", input_shape)
        channels = 2 * shape[-1]
        self.squeeze = keras.layers.Dense(
            max(channels // self.reduction, 1), activation="relu", name="squeeze",
            dtype=self.dtype_policy,
        )
        self.squeeze.build((shape[0], channels))
        self.excite = keras.layers.Dense(
            channels, activation="sigmoid", name="excite", dtype=self.dtype_policy
        )
        self.excite.build((shape[0], self.squeeze.units))

    def call(self, inputs):
        fused = ops.concatenate(list(inputs), axis=-1)
        weights = self.excite(self.squeeze(ops.mean(fused, axis=(1, 2))))
        return fused * weights[:, None, None, :]

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return (*shape[:-1], 2 * shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config
