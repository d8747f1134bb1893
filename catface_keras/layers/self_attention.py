"""Self-attention over the positions of a conv feature map (docs/PAPER.md section 2)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="catface")
class SelfAttention2D(keras.layers.Layer):
    """Single-head self-attention over the H*W positions of a feature map.

    With F the map flattened to N = H*W tokens of C channels:
    Q = F Wq, K = F Wk (key_dim channels), V = F Wv (C channels),
    A = softmax(Q K^T / sqrt(key_dim)). The layer returns the attended map
    A V reshaped to the input's shape, and also A and V, which the
    self-attention distillation loss compares between HQ and LQ images.

    Args:
        key_dim: channels of Q and K. Defaults to `max(C // 8, 1)`, the
            SAGAN convention.
        use_bias: whether the Q, K, V projections have a bias.
        residual: return F + gamma * A V, with gamma a learned scalar that
            starts at 0 (SAGAN), instead of A V.

    Call arguments:
        inputs: `(batch, H, W, C)`.

    Returns:
        A tuple `(attended, attention, value)` of shapes `(batch, H, W, C)`,
        `(batch, N, N)` and `(batch, N, C)`. The attention rows sum to 1 and
        are computed in float32 even under mixed precision.

    Example:
        >>> attended, attention, value = SelfAttention2D()(features)
    """

    def __init__(self, key_dim=None, use_bias=True, residual=False, **kwargs):
        super().__init__(**kwargs)
        if key_dim is not None and (not isinstance(key_dim, int) or key_dim < 1):
            raise ValueError(
                f"`key_dim` must be a positive int or None. Received: key_dim={key_dim!r}"
            )
        self.key_dim = key_dim
        self.use_bias = use_bias
        self.residual = residual

    def _resolved_key_dim(self, channels):
        return self.key_dim or max(channels // 8, 1)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "SelfAttention2D expects (batch, height, width, channels) with a "
                f"known channel count. Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        key_dim = self._resolved_key_dim(channels)
        self.query_dense = self._projection(key_dim, "query")
        self.key_dense = self._projection(key_dim, "key")
        self.value_dense = self._projection(channels, "value")
        for dense in (self.query_dense, self.key_dense, self.value_dense):
            dense.build(input_shape)
        if self.residual:
            self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def _projection(self, units, name):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer="glorot_uniform",
            name=name,
            dtype=self.dtype_policy,
        )

    def call(self, inputs):
        height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        batch = ops.shape(inputs)[0]
        tokens = ops.reshape(inputs, (batch, height * width, channels))
        query = self.query_dense(tokens)
        key = self.key_dense(tokens)
        value = self.value_dense(tokens)
        scores = ops.matmul(query, ops.transpose(key, (0, 2, 1)))
        scores = ops.cast(scores, "float32") / math.sqrt(query.shape[-1])
        attention = ops.softmax(scores, axis=-1)
        attended = ops.matmul(ops.cast(attention, value.dtype), value)
        attended = ops.reshape(attended, (batch, height, width, channels))
        if self.residual:
            attended = inputs + ops.cast(self.gamma, attended.dtype) * attended
        return attended, attention, value

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        tokens = None if height is None or width is None else height * width
        return (
            (batch, height, width, channels),
            (batch, tokens, tokens),
            (batch, tokens, channels),
        )

    def compute_output_spec(self, inputs):
        attended, attention, value = self.compute_output_shape(inputs.shape)
        return (
            keras.KerasTensor(attended, dtype=self.compute_dtype),
            keras.KerasTensor(attention, dtype="float32"),
            keras.KerasTensor(value, dtype=self.compute_dtype),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"key_dim": self.key_dim, "use_bias": self.use_bias, "residual": self.residual}
        )
        return config
