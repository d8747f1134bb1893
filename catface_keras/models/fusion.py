"""Stage 2 of CATFace for inference: the FR and SB branch maps fused into one embedding.

The stage-1 trunk and branches feed a fusion module (CATF or one of the
paper's baselines); its output goes through an embedding head, trained with
AdaFace on HQ and LQ images alike by `FusionTraining` (docs/PAPER.md section 5).
Once stage 2 exists, the fused embedding is the model's embedding.
"""

import keras

from catface_keras.choices import FUSION_KINDS
from catface_keras.layers.catf import CATF
from catface_keras.layers.cross_attention import CrossAttentionFusion
from catface_keras.layers.ffm import FFMFusion
from catface_keras.layers.fusion_baselines import AddFusion, ConcatFusion, SEFusion
from catface_keras.backbones.iresnet import embedding_head
from catface_keras.models.multibranch import MultiBranchModel

# What a stage-2 file saved before the inference/training split carries beyond the
# architecture; loading such a file drops them.
LEGACY_TRAINING_ARGUMENTS = ("num_classes", "adaface", "train_stage1", "stage1_lr_multiplier")

DEFAULT_FUSION_OPTIONS = {
    "num_heads": 4,
    "key_dim": None,
    "expansion": 4,
    "groups": 4,
    "use_mffnl": True,
    "use_caf": True,
    "residual": True,
    "identity_init": True,
    "se_reduction": 16,
}


def fusion_layer(kind, options=None, synchronized_batch_norm=False, name="fusion"):
    """The fusion layer `kind` (one of `FUSION_KINDS`), built from `options`.

    Every fusion layer takes `[fr, sb]`, two `(batch, H, W, C)` maps, and
    returns one map `(batch, H, W, C')`: C' is 2C for catf, concat and se,
    C for add, cross_attention and ffm. `options` overrides
    `DEFAULT_FUSION_OPTIONS`; each kind reads the keys that apply to it.
    """
    options = resolve_fusion_options(options)
    sync = synchronized_batch_norm
    if kind == "catf":
        return CATF(
            num_heads=options["num_heads"],
            key_dim=options["key_dim"],
            expansion=options["expansion"],
            groups=options["groups"],
            use_mffnl=options["use_mffnl"],
            use_caf=options["use_caf"],
            residual=options["residual"],
            identity_init=options["identity_init"],
            synchronized_batch_norm=sync,
            name=name,
        )
    if kind == "concat":
        return ConcatFusion(name=name)
    if kind == "add":
        return AddFusion(name=name)
    if kind == "se":
        return SEFusion(reduction=options["se_reduction"], name=name)
    if kind == "cross_attention":
        return CrossAttentionFusion(options["num_heads"], options["key_dim"], name=name)
    if kind == "ffm":
        return FFMFusion(options["num_heads"], synchronized_batch_norm=sync, name=name)
    raise ValueError(f"`fusion` must be one of {FUSION_KINDS}. Received: fusion={kind!r}")


def resolve_fusion_options(options):
    """`DEFAULT_FUSION_OPTIONS` updated with `options`, refusing unknown keys."""
    merged = dict(DEFAULT_FUSION_OPTIONS)
    for key, value in (options or {}).items():
        if key not in merged:
            raise ValueError(
                f"Unknown fusion option {key!r}. Expected keys from "
                f"{sorted(DEFAULT_FUSION_OPTIONS)}. Received: fusion_options={options!r}"
            )
        merged[key] = value
    return merged


@keras.saving.register_keras_serializable(package="catface")
class FusionModel(keras.Model):
    """The stage-2 CATFace network: a stage-1 model plus a fusion module.

    Called on images `(batch, image_size, image_size, 3)`, RGB in [0, 255],
    it returns `{"embedding": (batch, embedding_dim), "attribute_logits":
    (batch, num_attributes)}`, the same contract as `MultiBranchModel`, with
    the fused embedding (not normalised; its norm is the AdaFace quality
    proxy). `feature_network` adds `stage1_embedding` and `fused_features`.
    It holds the architecture only; `FusionTraining`
    (`catface_keras.models.stage2_training`) trains it.

    Args:
        stage1: a trained `MultiBranchModel` (its config dict when loading).
        fusion: one of `FUSION_KINDS`.
        fusion_options: overrides of `DEFAULT_FUSION_OPTIONS`.
        embedding_dim: fused embedding size (default: stage 1's).
        dropout: dropout of the fused embedding head (default: stage 1's).

    Example:
        >>> model = FusionModel(keras.models.load_model("stage1.keras"), fusion="catf")
        >>> model(images)["embedding"].shape  # (batch, 512)
    """

    def __init__(
        self,
        stage1,
        fusion="catf",
        fusion_options=None,
        embedding_dim=None,
        dropout=None,
        **kwargs,
    ):
        if isinstance(stage1, dict):
            stage1 = keras.saving.deserialize_keras_object(stage1)
        if not isinstance(stage1, MultiBranchModel):
            raise ValueError(
                "`stage1` must be a MultiBranchModel (a trained stage-1 model). "
                f"Received: stage1={type(stage1).__name__}"
            )
        if fusion not in FUSION_KINDS:
            raise ValueError(f"`fusion` must be one of {FUSION_KINDS}. Received: fusion={fusion!r}")
        fusion_options = resolve_fusion_options(fusion_options)
        embedding_dim = embedding_dim or stage1.embedding_dim
        dropout = stage1.dropout if dropout is None else dropout

        # === Functional graph ===
        images = keras.Input((stage1.image_size, stage1.image_size, 3), name="images")
        features = stage1.feature_network(images)
        sync = stage1.synchronized_batch_norm
        fused = fusion_layer(fusion, fusion_options, sync)(
            [features["fr_features"], features["sb_features"]]
        )
        embedding = embedding_head(
            fused, embedding_dim, dropout, name="fused_embedding", synchronized=sync
        )
        outputs = {"embedding": embedding, "attribute_logits": features["attribute_logits"]}
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self.stage1 = stage1
        self.feature_network = keras.Model(
            images,
            {**outputs, "stage1_embedding": features["embedding"], "fused_features": fused},
            name="fusion_feature_network",
        )

        # === Config ===
        self.fusion = fusion
        self.fusion_options = fusion_options
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.image_size = stage1.image_size
        self.attribute_names = stage1.attribute_names

    def get_config(self):
        return {
            "stage1": keras.saving.serialize_keras_object(self.stage1),
            "fusion": self.fusion,
            "fusion_options": dict(self.fusion_options),
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        # Files saved before the inference/training split carry the training arguments.
        return cls(**{k: v for k, v in config.items() if k not in LEGACY_TRAINING_ARGUMENTS})
