"""The CATF block: cross-attribute-guided transformer fusion (docs/PAPER.md section 5)."""

import keras
from keras import ops

from catface_keras.layers.caf import CAF
from catface_keras.layers.cross_attention import DualCrossAttention, validate_feature_pair
from catface_keras.layers.mffnl import MFFNL


@keras.saving.register_keras_serializable(package="catface")
class CATF(keras.layers.Layer):
    """Fuses the FR and SB maps: dual cross-attention, MFFNL per stream, CAF.

        fr', sb' = DualCrossAttention([fr, sb])      exchanged queries
        fr'', sb'' = MFFNL_FR(fr'), MFFNL_SB(sb')     multi-scale feed-forward
        out = CAF(concat([fr'', sb'']))               attention across channels

    `use_mffnl=False` or `use_caf=False` drops that step (the paper's
    Table VIII ablation). With `residual=True`, MFFNL and CAF each add
    their input to their output, as the blocks of a transformer do, so that
    a freshly initialised CATF passes the concatenated branch maps through
    and learns a refinement; docs/PAPER.md leaves this open, and without it the
    fused embedding generalised worse on the synthetic faces.

    Args:
        num_heads: heads of the cross-attention.
        key_dim: channels per head (default `C // num_heads`).
        expansion: MFFNL expansion ratio r.
        groups: CAF channel groups G (must divide 2C).
        kernel_sizes: MDConv kernel sizes.
        use_mffnl: apply MFFNL to each stream.
        use_caf: apply CAF to the concatenated streams.
        residual: residual connections around MFFNL and CAF.
        synchronized_batch_norm: batch moments over all replicas in MFFNL.

    Call arguments:
        inputs: `[fr, sb]`, two `(batch, H, W, C)` maps.

    Returns:
        `(batch, H, W, 2C)`.
    """

    def __init__(
        self,
        num_heads=4,
        key_dim=None,
        expansion=4,
        groups=4,
        kernel_sizes=(3, 5, 7),
        use_mffnl=True,
        use_caf=True,
        residual=True,
        synchronized_batch_norm=False,
        identity_init=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.expansion = expansion
        self.groups = groups
        self.kernel_sizes = tuple(kernel_sizes)
        self.use_mffnl = use_mffnl
        self.use_caf = use_caf
        self.residual = residual
        self.synchronized_batch_norm = synchronized_batch_norm
        if identity_init and not residual:
            raise ValueError(
                "`identity_init` zeroes the residual branches and needs residual=True. "
                f"Received: identity_init={identity_init!r}, residual={residual!r}"
            )
        self.identity_init = identity_init

    def build(self, input_shape):
        shape = validate_feature_pair("CATF", input_shape)
        policy = self.dtype_policy
        self.cross_attention = DualCrossAttention(
            self.num_heads, self.key_dim, name="cross_attention", dtype=policy
        )
        self.cross_attention.build(input_shape)
        self.mffnl = {}
        if self.use_mffnl:
            for branch in ("fr", "sb"):
                layer = MFFNL(
                    self.expansion,
                    self.kernel_sizes,
                    self.synchronized_batch_norm,
                    self.residual,
                    name=f"{branch}_mffnl",
                    dtype=policy,
                )
                layer.build(shape)
                self.mffnl[branch] = layer
        self.caf = None
        if self.use_caf:
            self.caf = CAF(
                self.groups, residual=self.residual, name="caf", dtype=policy
            )
            self.caf.build((*shape[:-1], 2 * shape[-1]))
        if self.identity_init:
            self._zero_residual_branches()

    def _zero_residual_branches(self):
        """Start as LayerNorm-ed concatenation: every residual branch outputs 0.

        The last layer of each branch starts at zero (cross-attention output
        projection, MFFNL's last BN scale, CAF's value projection), as in
        zero-initialised residual networks, so a fresh CATF passes the
        trained stage-1 maps through and learns how far to depart from them.
        """
        for attention in (self.cross_attention.fr_attention, self.cross_attention.sb_attention):
            dense = attention._output_dense
            dense.kernel.assign(ops.zeros_like(dense.kernel))
        for layer in self.mffnl.values():
            layer.project_norm.gamma.assign(ops.zeros_like(layer.project_norm.gamma))
        if self.caf is not None:
            kernel, _ = self.caf.projections["value"]
            kernel.assign(ops.zeros_like(kernel))

    def call(self, inputs, training=None):
        fr, sb = self.cross_attention(inputs)
        if self.use_mffnl:
            fr = self.mffnl["fr"](fr, training=training)
            sb = self.mffnl["sb"](sb, training=training)
        fused = ops.concatenate([fr, sb], axis=-1)
        return fused if self.caf is None else self.caf(fused)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return (*shape[:-1], 2 * shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "expansion": self.expansion,
                "groups": self.groups,
                "kernel_sizes": list(self.kernel_sizes),
                "use_mffnl": self.use_mffnl,
                "use_caf": self.use_caf,
                "residual": self.residual,
                "synchronized_batch_norm": self.synchronized_batch_norm,
                "identity_init": self.identity_init,
            }
        )
        return config
