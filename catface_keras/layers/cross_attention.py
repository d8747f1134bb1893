"""Cross-attention between the FR and SB feature maps (docs/PAPER.md section 5, step 1)."""

import keras
from keras import ops


def _tokens(feature_map):
    """`(batch, H, W, C)` -> `(batch, H*W, C)`."""
    _, height, width, channels = feature_map.shape
    return ops.reshape(feature_map, (-1, height * width, channels))


def validate_feature_pair(layer, input_shape):
    """The `(batch, H, W, C)` shape shared by the `[fr, sb]` inputs of a fusion layer."""
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
        raise ValueError(
            f"{layer} expects a list of two feature maps [fr, sb]. "
            f"Received: input_shape={input_shape}"
        )
    fr_shape, sb_shape = (tuple(shape) for shape in input_shape)
    if len(fr_shape) != 4 or None in fr_shape[1:] or fr_shape[1:] != sb_shape[1:]:
        raise ValueError(
            f"{layer} expects two (batch, H, W, C) maps of one known shape. "
            f"Received: input_shape={input_shape}"
        )
    return fr_shape


def _multi_head_attention(num_heads, key_dim, use_bias, name, dtype):
    return keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=key_dim, use_bias=use_bias, name=name, dtype=dtype
    )


class _AttentionBlock(keras.layers.Layer):
    """Shared arguments and sublayer construction of the cross-attention layers."""

    def __init__(self, num_heads=4, key_dim=None, residual=True, normalize=True,
                 use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"`num_heads` must be a positive int. Received: num_heads={num_heads!r}")
        if key_dim is not None and (not isinstance(key_dim, int) or key_dim < 1):
            raise ValueError(f"`key_dim` must be a positive int or None. Received: key_dim={key_dim!r}")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.residual = residual
        self.normalize = normalize
        self.use_bias = use_bias

    def _build_stream(self, name, map_shape):
        """One attention (queries from the other stream) and its LayerNorm."""
        channels = map_shape[-1]
        key_dim = self.key_dim or max(channels // self.num_heads, 1)
        token_shape = (map_shape[0], map_shape[1] * map_shape[2], channels)
        attention = _multi_head_attention(
            self.num_heads, key_dim, self.use_bias, f"{name}_attention", self.dtype_policy
        )
        attention.build(token_shape, token_shape)
        norm = None
        if self.normalize:
            norm = keras.layers.LayerNormalization(
                epsilon=1e-6, name=f"{name}_norm", dtype=self.dtype_policy
            )
            norm.build(token_shape)
        return attention, norm

    def _attend(self, attention, norm, queries_from, values_from):
        """`values_from + attention(Q from queries_from, K and V from values_from)`."""
        queries, values = _tokens(queries_from), _tokens(values_from)
        attended = attention(query=queries, value=values, key=values)
        if self.residual:
            attended = values + attended
        if norm is not None:
            attended = norm(attended)
        return ops.reshape(attended, ops.shape(values_from))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "residual": self.residual,
                "normalize": self.normalize,
                "use_bias": self.use_bias,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="catface")
class DualCrossAttention(_AttentionBlock):
    """Multi-head cross-attention in both directions with exchanged queries.

    With tokens the H*W positions of each map:

        CA_FR = softmax(Q_SB K_FR^T / sqrt(d)) V_FR
        CA_SB = softmax(Q_FR K_SB^T / sqrt(d)) V_SB

    Each direction is a `keras.layers.MultiHeadAttention` (heads run in
    parallel, are concatenated and projected back to C channels). The SB
    queries ask where in the FR map the attribute evidence lies, and the
    reverse. Around each, as in a transformer block: `LayerNorm(F + CA)`.

    The two directions have their own weights and the same structure, so
    exchanging the inputs together with the two directions' weights
    exchanges the outputs.

    Args:
        num_heads: attention heads.
        key_dim: channels per head of Q and K (and V); default `C // num_heads`.
        residual: add the stream's input map to its attended map.
        normalize: LayerNorm (over channels) after the residual.
        use_bias: biases in the Q/K/V/output projections.

    Call arguments:
        inputs: `[fr, sb]`, two `(batch, H, W, C)` maps.

    Returns:
        `[fr_out, sb_out]`, both `(batch, H, W, C)`.
    """

    def build(self, input_shape):
        shape = validate_feature_pair("DualCrossAttention", input_shape)
        self.fr_attention, self.fr_norm = self._build_stream("fr", shape)
        self.sb_attention, self.sb_norm = self._build_stream("sb", shape)

    def call(self, inputs):
        fr, sb = inputs
        fr_out = self._attend(self.fr_attention, self.fr_norm, queries_from=sb, values_from=fr)
        sb_out = self._attend(self.sb_attention, self.sb_norm, queries_from=fr, values_from=sb)
        return [fr_out, sb_out]

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return [shape, shape]


@keras.saving.register_keras_serializable(package="catface")
class CrossAttentionFusion(_AttentionBlock):
    """The single cross-attention fusion baseline (docs/PAPER.md section 5, Table II).

    The FR half of `DualCrossAttention`: SB queries attend over the FR keys
    and values, `LayerNorm(F_FR + softmax(Q_SB K_FR^T / sqrt(d)) V_FR)`;
    the SB map only guides where FR looks.

    Call arguments:
        inputs: `[fr, sb]`, two `(batch, H, W, C)` maps.

    Returns:
        `(batch, H, W, C)`.
    """

    def build(self, input_shape):
        shape = validate_feature_pair("CrossAttentionFusion", input_shape)
        self.attention, self.norm = self._build_stream("fr", shape)

    def call(self, inputs):
        fr, sb = inputs
        return self._attend(self.attention, self.norm, queries_from=sb, values_from=fr)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])
