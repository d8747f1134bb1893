"""Stage 1 of CATFace for inference: the multi-branch network.

A shared iResNet trunk feeds two branches, face recognition (FR) and soft
biometrics (SB), each with its own copy of the last iResNet stage(s) and a
self-attention layer on its last conv map (docs/PAPER.md section 2). This model
holds the architecture only; how it is trained (AdaFace head, distillation,
loss weights) lives in `catface_keras.models.stage1_training`, which
composes it.
"""

import keras

from catface_keras.backbones.iresnet import (
    NUM_STAGES,
    backbone_spec,
    batch_norm,
    block_options,
    embedding_head,
    iresnet_stage,
    iresnet_stem,
    pixel_normalization,
    saved_backbone_spec,
    stack_layers,
    validate_image_size,
)
from catface_keras.layers.perceptibility import PerceptibilityAttention
from catface_keras.layers.self_attention import SelfAttention2D
from catface_keras.soft_biometrics import PAPER_ATTRIBUTES

BRANCHES = ("fr", "sb")
# What a stage-1 file saved before the inference/training split carries beyond the
# architecture; loading such a file drops them (the training side reads them instead).
LEGACY_TRAINING_ARGUMENTS = (
    "num_classes",
    "adaface",
    "partial_fc_sample_rate",
    "loss_weights",
    "distillation",
    "distillation_stage",
    "train_on",
    "lq_images",
    "index_diversion_weight",
    "unrecognizable_momentum",
    "attribute_weights",
    "attribute_positive_weights",
)


def attribute_head(
    features, num_attributes, dropout, name="attribute_logits", synchronized=False, created=None
):
    """One binary classifier per attribute: `(batch, H, W, C)` -> `(batch, A)` logits."""
    layers = [
        batch_norm(f"{name}_bn", synchronized),
        keras.layers.Dropout(dropout, name=f"{name}_dropout"),
        keras.layers.Flatten(name=f"{name}_flatten"),
        keras.layers.Dense(num_attributes, dtype="float32", name=name),
    ]
    return stack_layers(layers, features, created)


def stage_map_key(branch, stage):
    """`feature_network` key of backbone stage `stage`'s output map (1-4) in `branch`."""
    return f"{branch}_stage{stage}"


def block_attention_key(branch, index):
    """`feature_network` key of the `index`-th CBAM map (pre-sigmoid) in `branch`."""
    return f"{branch}_block_attention_{index}"


@keras.saving.register_keras_serializable(package="catface")
class MultiBranchModel(keras.Model):
    """The stage-1 CATFace network: shared trunk, FR and SB branches.

    Called on images `(batch, image_size, image_size, 3)`, RGB in [0, 255],
    it returns `{"embedding": (batch, embedding_dim), "attribute_logits":
    (batch, num_attributes)}`. The embedding is not normalised: its norm is
    the AdaFace quality proxy; compare faces by cosine similarity.

    `feature_network` gives the intermediate outputs as well: per branch
    (`fr`, `sb`) the attended map `{branch}_features` (what stage 2 fuses),
    the self-attention `{branch}_attention` `(batch, N, N)` and value
    `{branch}_value` `(batch, N, C)`, every backbone stage's output map
    `{branch}_stage{k}` (a stage shared by both branches appears once, under
    `fr`), the CBAM maps `{branch}_block_attention_{i}` of a CBAM-iResNet and
    the perceptibility map `fr_perceptibility` when there is one: what the
    distillation kinds of `MultiBranchTraining` compare.

    Args:
        backbone: iResNet preset name or dict (see `IResNetBackbone`).
        image_size: input side, a multiple of 16.
        branch_stage: index (0-3) of the first iResNet stage that each branch
            has its own copy of; the stages before it are shared.
        embedding_dim: FR embedding size (512).
        attribute_names: the SB attributes, in label order.
        attention_key_dim: Q/K channels of the branch self-attention
            (default C // 8).
        attention_residual: feed the heads F + gamma * A V (gamma a learned
            scalar starting at 0, as SAGAN) rather than A V alone. docs/PAPER.md
            leaves the residual unstated; with it the heads keep the conv
            map's spatial detail, and on the synthetic faces FR and SB losses
            fall about twice as fast. False gives the literal A V.
        dropout: dropout rate of both heads (active in training only).
        block_attention: None, or `"cbam"` for a CBAM-iResNet (CBAM in every
            residual block).
        perceptibility_attention: re-weight the FR branch map by a learned
            spatial attention before the embedding head (Chai et al. 2023).
        synchronized_batch_norm: compute BN batch moments over all replicas,
            so that data-parallel training matches one device (costs one
            all-reduce per BN layer). Off by default, as in arcface_torch.

    Example:
        >>> model = MultiBranchModel(backbone="ir_18")
        >>> model(images)["embedding"].shape  # (batch, 512)
    """

    def __init__(
        self,
        backbone="ir_50",
        image_size=112,
        branch_stage=3,
        embedding_dim=512,
        attribute_names=PAPER_ATTRIBUTES,
        attention_key_dim=None,
        attention_residual=True,
        dropout=0.4,
        block_attention=None,
        perceptibility_attention=False,
        synchronized_batch_norm=False,
        **kwargs,
    ):
        spec = backbone_spec(backbone)
        stage_blocks, stage_widths = spec["stage_blocks"], spec["stage_widths"]
        validate_image_size(image_size)
        if not isinstance(branch_stage, int) or not 0 <= branch_stage < NUM_STAGES:
            raise ValueError(
                f"`branch_stage` must be an int in [0, {NUM_STAGES - 1}] so that each "
                f"branch keeps at least one stage. Received: branch_stage={branch_stage!r}"
            )
        attribute_names = tuple(attribute_names)

        # === Functional graph ===
        images = keras.Input((image_size, image_size, 3), name="images")
        x = pixel_normalization(images)
        sync = synchronized_batch_norm
        x = iresnet_stem(x, stage_widths[0], synchronized=sync)
        # Maps of the shared stages count once, under "fr".
        block_maps = {branch: [] for branch in BRANCHES}
        features = {}

        def stage(inputs, index, branch, prefix):
            outputs = iresnet_stage(
                inputs, stage_widths[index], stage_blocks[index], f"{prefix}stage{index + 1}",
                sync,
                **block_options(spec),
                block_attention=block_attention,
                attention_maps=block_maps[branch],
            )
            features[stage_map_key(branch, index + 1)] = outputs
            return outputs

        for index in range(branch_stage):
            x = stage(x, index, "fr", "")
        for branch in BRANCHES:
            y = x
            for index in range(branch_stage, NUM_STAGES):
                y = stage(y, index, branch, f"{branch}_")
            attended, attention, value = SelfAttention2D(
                key_dim=attention_key_dim,
                residual=attention_residual,
                name=f"{branch}_self_attention",
            )(y)
            if branch == "fr" and perceptibility_attention:
                attended, features["fr_perceptibility"] = PerceptibilityAttention(
                    name="fr_perceptibility"
                )(attended)
            features.update(
                {
                    f"{branch}_features": attended,
                    f"{branch}_attention": attention,
                    f"{branch}_value": value,
                }
            )
        for branch, maps in block_maps.items():
            for index, tensor in enumerate(maps):
                features[block_attention_key(branch, index)] = tensor
        head_layers = []
        embedding = embedding_head(
            features["fr_features"], embedding_dim, dropout, synchronized=sync,
            created=head_layers,
        )
        attribute_logits = attribute_head(
            features["sb_features"], len(attribute_names), dropout, synchronized=sync,
            created=head_layers,
        )
        outputs = {"embedding": embedding, "attribute_logits": attribute_logits}
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self.feature_network = keras.Model(
            images, {**outputs, **features}, name="feature_network"
        )

        # === Config ===
        self.backbone_spec = spec
        self.image_size = image_size
        self.branch_stage = branch_stage
        self.embedding_dim = embedding_dim
        self.attribute_names = attribute_names
        self.attention_key_dim = attention_key_dim
        self.attention_residual = attention_residual
        self.dropout = dropout
        self.block_attention = block_attention
        self.perceptibility_attention = bool(perceptibility_attention)
        self.synchronized_batch_norm = synchronized_batch_norm
        # The embedding and attribute heads: what stage 2 keeps frozen when it
        # fine-tunes the rest (a tuple, so Keras does not track it twice).
        self.head_layers = tuple(head_layers)

    def get_config(self):
        return {
            "backbone": self.backbone_spec,
            "image_size": self.image_size,
            "branch_stage": self.branch_stage,
            "embedding_dim": self.embedding_dim,
            "attribute_names": list(self.attribute_names),
            "attention_key_dim": self.attention_key_dim,
            "attention_residual": self.attention_residual,
            "dropout": self.dropout,
            "block_attention": self.block_attention,
            "perceptibility_attention": self.perceptibility_attention,
            "synchronized_batch_norm": self.synchronized_batch_norm,
            "name": self.name,
            "trainable": self.trainable,
        }

    def load_own_variables(self, store):
        # The model owns no variable; a file saved before the inference/training
        # split may hold the index-diversion centre here, a training variable.
        if self._trainable_variables or self._non_trainable_variables:
            super().load_own_variables(store)

    @classmethod
    def from_config(cls, config):
        config = architecture_config(config)
        # Models saved before `stride2_padding` existed keep their padding.
        return cls(**{**config, "backbone": saved_backbone_spec(config["backbone"])})


def architecture_config(config):
    """A stage-1 config without the training arguments files saved before the split carry."""
    return {key: value for key, value in config.items() if key not in LEGACY_TRAINING_ARGUMENTS}
