"""FFM, the feature fusion module of CMX (Zhang et al., 2023), a Table II baseline."""

import keras
from keras import ops

from catface_keras.layers.batch_norm import batch_norm
from catface_keras.layers.cross_attention import validate_feature_pair


@keras.saving.register_keras_serializable(package="catface")
class FFMFusion(keras.layers.Layer):
    """CMX's two-stage fusion: global-context cross-attention, then channel embedding.

    Information exchange, on the H*W tokens of each stream m:

        [r_m, u_m] = relu(x_m W_m)                 residual and interaction vectors
        G_m = softmax_N(K_m)^T V_m                 per-head global context (d x d)
        a_FR = softmax_d(Q_FR) G_SB,  a_SB = softmax_d(Q_SB) G_FR
        x'_m = LayerNorm(x_m + concat([r_m, a_m]) P_m)

    with Q, K, V projections of u_m (efficient attention, linear in N).
    Fusion: the two streams are concatenated, embedded to C channels by a
    1x1 conv `e`, and `BN(e + Conv1x1(relu(e + DWConv3x3(e))))` is returned.

    Args:
        num_heads: heads of the cross-attention (must divide C).

    Call arguments:
        inputs: `[fr, sb]`, two `(batch, H, W, C)` maps.

    Returns:
        `(batch, H, W, C)`.
    """

    def __init__(self, num_heads=4, synchronized_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"`num_heads` must be a positive int. Received: num_heads={num_heads!r}")
        self.num_heads = num_heads
        self.synchronized_batch_norm = synchronized_batch_norm

    def build(self, input_shape):
        shape = validate_feature_pair("FFMFusion", input_shape)
        channels = shape[-1]
        if channels % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the channel count ({channels}). "
                f"Received: num_heads={self.num_heads}"
            )
        tokens = (shape[0], shape[1] * shape[2], channels)
        self.streams = {}
        for branch in ("fr", "sb"):
            layers = {
                "split": self._dense(2 * channels, f"{branch}_split", "relu"),
                "query": self._dense(channels, f"{branch}_query"),
                "key_value": self._dense(2 * channels, f"{branch}_key_value"),
                "output": self._dense(channels, f"{branch}_output"),
                "norm": keras.layers.LayerNormalization(
                    epsilon=1e-6, name=f"{branch}_norm", dtype=self.dtype_policy
                ),
            }
            layers["split"].build(tokens)
            for name in ("query", "key_value", "norm"):
                layers[name].build(tokens)
            layers["output"].build((*tokens[:-1], 2 * channels))
            self.streams[branch] = layers
        map_shape = tuple(shape)
        self.embed = self._conv(channels, 1, "embed")
        self.embed.build((*map_shape[:-1], 2 * channels))
        self.depthwise = keras.layers.DepthwiseConv2D(
            3, padding="same", use_bias=False, name="embed_depthwise", dtype=self.dtype_policy
        )
        self.depthwise.build(map_shape)
        self.mix = self._conv(channels, 1, "embed_mix")
        self.mix.build(map_shape)
        self.norm = batch_norm("embed_bn", self.synchronized_batch_norm, dtype=self.dtype_policy)
        self.norm.build(map_shape)

    def _dense(self, units, name, activation=None):
        return keras.layers.Dense(units, activation=activation, name=name, dtype=self.dtype_policy)

    def _conv(self, filters, kernel, name):
        return keras.layers.Conv2D(filters, kernel, name=name, dtype=self.dtype_policy)

    def _heads(self, tokens):
        """`(batch, N, C)` -> `(batch, heads, N, C / heads)`."""
        channels = tokens.shape[-1]
        split = ops.reshape(tokens, (-1, tokens.shape[1], self.num_heads, channels // self.num_heads))
        return ops.transpose(split, (0, 2, 1, 3))

    def _exchange_inputs(self, stream, tokens):
        residual, interaction = ops.split(stream["split"](tokens), 2, axis=-1)
        query = self._heads(stream["query"](interaction))
        key, value = ops.split(stream["key_value"](interaction), 2, axis=-1)
        key, value = self._heads(key), self._heads(value)
        context = ops.einsum("bhnk,bhnv->bhkv", ops.softmax(key, axis=2), value)
        return residual, ops.softmax(query, axis=-1), context

    def call(self, inputs, training=None):
        fr, sb = inputs
        _, height, width, channels = fr.shape
        tokens = {
            "fr": ops.reshape(fr, (-1, height * width, channels)),
            "sb": ops.reshape(sb, (-1, height * width, channels)),
        }
        parts = {m: self._exchange_inputs(self.streams[m], tokens[m]) for m in tokens}
        exchanged = []
        for branch, other in (("fr", "sb"), ("sb", "fr")):
            residual, query, _ = parts[branch]
            attended = ops.einsum("bhnk,bhkv->bhnv", query, parts[other][2])
            attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (-1, height * width, channels))
            stream = self.streams[branch]
            mixed = stream["output"](ops.concatenate([residual, attended], axis=-1))
            exchanged.append(
                ops.reshape(stream["norm"](tokens[branch] + mixed), (-1, height, width, channels))
            )
        embedded = self.embed(ops.concatenate(exchanged, axis=-1))
        mixed = self.mix(ops.relu(embedded + self.depthwise(embedded)))
        return self.norm(embedded + mixed, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_heads": self.num_heads, "synchronized_batch_norm": self.synchronized_batch_norm}
        )
        return config
