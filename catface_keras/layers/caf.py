"""CAF: grouped attention across channel tokens (docs/PAPER.md section 5, step 3)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="catface")
class CAF(keras.layers.Layer):
    """Attention across channels, within groups of channels (CATF's CAF).

    Each channel of the `(H, W, C)` map is a token whose features are its
    N = H*W spatial values. The C tokens are split into `groups` contiguous
    groups; within group g, tokens are projected to Q, K, V by N x N
    matrices of that group and attend to each other:

        out_g = softmax(Q_g K_g^T / sqrt(N)) V_g

    and the groups are concatenated back in channel order (plus the input
    with `residual=True`). The projections
    act on the spatial features and are shared by the tokens of a group, so
    permuting channels within a group permutes the output the same way.

    Args:
        groups: number of channel groups G (must divide C).
        use_bias: biases in the Q/K/V projections.
        residual: return `inputs + out` (docs/PAPER.md leaves this open).

    Call arguments:
        inputs: `(batch, H, W, C)`; in CATF, the two MFFNL outputs
            concatenated (C = 2 C_branch).

    Returns:
        `(batch, H, W, C)`.
    """

    def __init__(self, groups=4, use_bias=True, residual=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"`groups` must be a positive int. Received: groups={groups!r}")
        self.groups = groups
        self.use_bias = use_bias
        self.residual = residual

    def build(self, input_shape):
        if len(input_shape) != 4 or None in tuple(input_shape[1:]):
            raise ValueError(
                "CAF expects (batch, H, W, C) with known H, W and C. "
                f"Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(
                f"`groups` must divide the channel count ({channels}). "
                f"Received: groups={self.groups}"
            )
        tokens = input_shape[1] * input_shape[2]
        self.projections = {}
        for name in ("query", "key", "value"):
            kernel = self.add_weight(
                shape=(self.groups, tokens, tokens),
                initializer="glorot_uniform",
                name=f"{name}_kernel",
            )
            bias = None
            if self.use_bias:
                bias = self.add_weight(
                    shape=(self.groups, 1, tokens), initializer="zeros", name=f"{name}_bias"
                )
            self.projections[name] = (kernel, bias)

    def _project(self, tokens, name):
        kernel, bias = self.projections[name]
        projected = ops.einsum("bgtn,gnm->bgtm", tokens, kernel)
        return projected if bias is None else projected + bias

    def call(self, inputs):
        _, height, width, channels = inputs.shape
        spatial = height * width
        # (batch, H, W, C) -> (batch, G, C / G, N): one row per channel token.
        tokens = ops.transpose(ops.reshape(inputs, (-1, spatial, channels)), (0, 2, 1))
        tokens = ops.reshape(tokens, (-1, self.groups, channels // self.groups, spatial))
        query = self._project(tokens, "query")
        key = self._project(tokens, "key")
        value = self._project(tokens, "value")
        scores = ops.einsum("bgtn,bgsn->bgts", query, key)
        attention = ops.softmax(ops.cast(scores, "float32") / math.sqrt(spatial), axis=-1)
        attended = ops.einsum("bgts,bgsn->bgtn", ops.cast(attention, value.dtype), value)
        attended = ops.transpose(ops.reshape(attended, (-1, channels, spatial)), (0, 2, 1))
        attended = ops.reshape(attended, (-1, height, width, channels))
        return inputs + attended if self.residual else attended

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"groups": self.groups, "use_bias": self.use_bias, "residual": self.residual})
        return config


@keras.saving.register_keras_serializable(package="catface")
class ChannelGroupAttention(CAF):
    """The name CAF had before it took the paper's; kept so saved models load."""
