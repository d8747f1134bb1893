"""Stage 1 of CATFace: the multi-branch network with self-attention distillation.

A shared iResNet trunk feeds two branches, face recognition (FR) and soft
biometrics (SB), each with its own copy of the last iResNet stage(s) and a
self-attention layer on its last conv map (PAPER.md section 2). Training
takes paired batches: every HQ image comes with a degraded LQ copy; both
carry the task losses, and the LQ attention maps and values are pulled
toward the HQ ones (section 3):

    L = lambda_FR * (L_FR + lambda_KD * L_KD^FR) + lambda_SB * (L_SB + lambda_KD * L_KD^SB)
"""

import keras
import tensorflow as tf
from keras import ops

from catface_keras.backbones.iresnet import (
    NUM_STAGES,
    backbone_spec,
    batch_norm,
    block_options,
    iresnet_stage,
    iresnet_stem,
    pixel_normalization,
    saved_backbone_spec,
    validate_image_size,
)
from catface_keras.distribution import scale_loss_for_replicas
from catface_keras.layers.adaface import AdaFace
from catface_keras.layers.self_attention import SelfAttention2D
from catface_keras.losses.attributes import masked_attribute_bce
from catface_keras.losses.distillation import DISTILLATION_KINDS, attention_distillation_loss
from catface_keras.soft_biometrics import PAPER_ATTRIBUTES

DEFAULT_LOSS_WEIGHTS = {"fr": 3.0, "sb": 1.0, "distillation": 1.0}
DEFAULT_ADAFACE = {"margin": 0.4, "h": 0.333, "scale": 64.0, "t_alpha": 0.01}
STAGE1_LOSS_TERMS = ("loss", "fr_loss", "sb_loss", "fr_distillation", "sb_distillation")
# Layer names of the embedding and attribute heads (see `embedding_head`, `attribute_head`).
STAGE1_HEAD_PREFIXES = ("embedding", "attribute_logits")


def embedding_head(features, embedding_dim, dropout, name="embedding", synchronized=False):
    """The iResNet output layer: BN, dropout, flatten, dense, BN (no affine).

    `(batch, H, W, C)` -> `(batch, embedding_dim)`; the norm of the result
    is AdaFace's quality proxy, so it is not normalised here.
    """
    x = batch_norm(f"{name}_bn_features", synchronized)(features)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(embedding_dim, name=f"{name}_dense")(x)
    x = batch_norm(f"{name}_bn", synchronized, center=False, scale=False)(x)
    # Keep the embedding float32 under mixed precision: its norm is a signal.
    return keras.layers.Activation("linear", dtype="float32", name=name)(x)


def attribute_head(features, num_attributes, dropout, name="attribute_logits", synchronized=False):
    """One binary classifier per attribute: `(batch, H, W, C)` -> `(batch, A)` logits."""
    x = batch_norm(f"{name}_bn", synchronized)(features)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    return keras.layers.Dense(num_attributes, dtype="float32", name=name)(x)


def paired_adaface_loss(adaface, embedding, identity, training):
    """Mean AdaFace cross-entropy of `concat([hq, lq])` embeddings.

    Args:
        adaface: an `AdaFace` head.
        embedding: `(2 * batch, D)`, the HQ images then their LQ copies.
        identity: `(batch,)` class indices, shared by each HQ/LQ pair.
        training: whether AdaFace updates its running statistics.
    """
    identity = ops.concatenate([identity] * 2, axis=0)
    logits = adaface(embedding, identity, training=training)
    return ops.mean(
        keras.losses.sparse_categorical_crossentropy(identity, logits, from_logits=True)
    )


@keras.saving.register_keras_serializable(package="catface")
class MultiBranchModel(keras.Model):
    """The stage-1 CATFace network: shared trunk, FR and SB branches.

    Called on images `(batch, image_size, image_size, 3)`, RGB in [0, 255],
    it returns `{"embedding": (batch, embedding_dim), "attribute_logits":
    (batch, num_attributes)}`. The embedding is not normalised: its norm is
    the AdaFace quality proxy; compare faces by cosine similarity.
    `feature_network` gives the intermediate outputs as well (branch
    attention A and value V, attended maps for stage-2 fusion).

    `fit` takes paired batches `({"hq": images, "lq": images},
    {"identity": (batch,) ints, "attributes": (batch, A) ints in {-1, 0, 1}})`
    and reports every loss term as its own metric.

    Args:
        num_classes: training identities (AdaFace classes).
        backbone: iResNet preset name or dict (see `IResNetBackbone`).
        image_size: input side, a multiple of 16.
        branch_stage: index (0-3) of the first iResNet stage that each branch
            has its own copy of; the stages before it are shared.
        embedding_dim: FR embedding size (512).
        attribute_names: the SB attributes, in label order.
        attention_key_dim: Q/K channels of the branch self-attention
            (default C // 8).
        attention_residual: feed the heads F + gamma * A V (gamma a learned
            scalar starting at 0, as SAGAN) rather than A V alone. PAPER.md
            leaves the residual unstated; with it the heads keep the conv
            map's spatial detail, and on the synthetic faces FR and SB losses
            fall about twice as fast. False gives the literal A V.
        dropout: dropout rate of both heads.
        adaface: dict of `AdaFace` arguments (margin, h, scale, t_alpha).
        loss_weights: dict with keys `fr` (3), `sb` (1), `distillation` (1).
        distillation: `"cosine"` (the paper's) or `"l2"`.
        attribute_weights: w_j per attribute (default all 1).
        attribute_positive_weights: optional weight of positive labels per attribute.
        synchronized_batch_norm: compute BN batch moments over all replicas,
            so that data-parallel training matches one device (costs one
            all-reduce per BN layer). Off by default, as in arcface_torch.
    """

    def __init__(
        self,
        num_classes,
        backbone="ir_50",
        image_size=112,
        branch_stage=3,
        embedding_dim=512,
        attribute_names=PAPER_ATTRIBUTES,
        attention_key_dim=None,
        attention_residual=True,
        dropout=0.4,
        adaface=None,
        loss_weights=None,
        distillation="cosine",
        attribute_weights=None,
        attribute_positive_weights=None,
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
        if distillation not in DISTILLATION_KINDS:
            raise ValueError(
                f"`distillation` must be one of {DISTILLATION_KINDS}. "
                f"Received: distillation={distillation!r}"
            )
        attribute_names = tuple(attribute_names)
        loss_weights = _merge_known(DEFAULT_LOSS_WEIGHTS, loss_weights, "loss_weights")
        adaface = _merge_known(DEFAULT_ADAFACE, adaface, "adaface")
        for name, weights in (
            ("attribute_weights", attribute_weights),
            ("attribute_positive_weights", attribute_positive_weights),
        ):
            if weights is not None and len(weights) != len(attribute_names):
                raise ValueError(
                    f"`{name}` needs one value per attribute ({len(attribute_names)}). "
                    f"Received: {name}={weights!r}"
                )

        # === Functional graph ===
        images = keras.Input((image_size, image_size, 3), name="images")
        x = pixel_normalization(images)
        sync = synchronized_batch_norm
        x = iresnet_stem(x, stage_widths[0], synchronized=sync)
        for index in range(branch_stage):
            x = iresnet_stage(
                x, stage_widths[index], stage_blocks[index], f"stage{index + 1}", sync,
                **block_options(spec),
            )
        branches = {}
        for branch in ("fr", "sb"):
            y = x
            for index in range(branch_stage, NUM_STAGES):
                y = iresnet_stage(
                    y, stage_widths[index], stage_blocks[index], f"{branch}_stage{index + 1}", sync,
                    **block_options(spec),
                )
            attended, attention, value = SelfAttention2D(
                key_dim=attention_key_dim,
                residual=attention_residual,
                name=f"{branch}_self_attention",
            )(y)
            branches[branch] = {"features": attended, "attention": attention, "value": value}
        embedding = embedding_head(
            branches["fr"]["features"], embedding_dim, dropout, synchronized=sync
        )
        attribute_logits = attribute_head(
            branches["sb"]["features"], len(attribute_names), dropout, synchronized=sync
        )
        outputs = {"embedding": embedding, "attribute_logits": attribute_logits}
        # AdaFace is a training head outside the inference graph; it is an
        # attribute so that its class centres and running statistics are saved.
        self.adaface = AdaFace(num_classes, dtype="float32", name="adaface", **adaface)
        self.adaface.build((None, embedding_dim))
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self.feature_network = keras.Model(
            images,
            {
                **outputs,
                **{
                    f"{branch}_{key}": tensor
                    for branch, parts in branches.items()
                    for key, tensor in parts.items()
                },
            },
            name="feature_network",
        )

        # === Config ===
        self.num_classes = num_classes
        self.backbone_spec = spec
        self.image_size = image_size
        self.branch_stage = branch_stage
        self.embedding_dim = embedding_dim
        self.attribute_names = attribute_names
        self.attention_key_dim = attention_key_dim
        self.attention_residual = attention_residual
        self.dropout = dropout
        self.adaface_config = adaface
        self.loss_weights = loss_weights
        self.distillation = distillation
        self.attribute_weights = None if attribute_weights is None else list(attribute_weights)
        self.attribute_positive_weights = (
            None if attribute_positive_weights is None else list(attribute_positive_weights)
        )
        self.synchronized_batch_norm = synchronized_batch_norm
        self.loss_trackers = {
            term: keras.metrics.Mean(name=term) for term in STAGE1_LOSS_TERMS
        }
        self.feature_norm_tracker = keras.metrics.Mean(name="feature_norm")

    # === Training ===

    @property
    def metrics(self):
        return [*self.loss_trackers.values(), self.feature_norm_tracker]

    def compute_stage1_losses(self, features, targets, batch_size, training):
        """Every stage-1 loss term from the feature network's outputs.

        Args:
            features: `feature_network` outputs on `concat([hq, lq])`.
            targets: dict with `identity` `(batch,)` and optionally
                `attributes` `(batch, A)`; labels apply to HQ and LQ alike.
            batch_size: number of pairs (the HQ half of `features`).
            training: whether AdaFace updates its running statistics.

        Returns:
            dict of float32 scalars keyed by `STAGE1_LOSS_TERMS`.
        """
        fr_loss = paired_adaface_loss(
            self.adaface, features["embedding"], targets["identity"], training
        )
        if targets.get("attributes") is not None:
            sb_loss = masked_attribute_bce(
                ops.concatenate([targets["attributes"]] * 2, axis=0),
                features["attribute_logits"],
                self.attribute_weights,
                self.attribute_positive_weights,
            )
        else:
            sb_loss = ops.zeros((), "float32")
        distillation = {}
        for branch in ("fr", "sb"):
            attention = features[f"{branch}_attention"]
            value = features[f"{branch}_value"]
            distillation[branch] = attention_distillation_loss(
                attention[:batch_size],
                attention[batch_size:],
                value[:batch_size],
                value[batch_size:],
                kind=self.distillation,
            )
        weights = self.loss_weights
        total = weights["fr"] * (fr_loss + weights["distillation"] * distillation["fr"]) + weights[
            "sb"
        ] * (sb_loss + weights["distillation"] * distillation["sb"])
        return {
            "loss": total,
            "fr_loss": fr_loss,
            "sb_loss": sb_loss,
            "fr_distillation": distillation["fr"],
            "sb_distillation": distillation["sb"],
        }

    def _paired_forward(self, data, training):
        inputs, targets = data[0], data[1]
        batch_size = ops.shape(inputs["hq"])[0]
        images = ops.concatenate([inputs["hq"], inputs["lq"]], axis=0)
        features = self.feature_network(images, training=training)
        losses = self.compute_stage1_losses(features, targets, batch_size, training)
        return features, losses

    def _update_trackers(self, features, losses):
        for term, value in losses.items():
            self.loss_trackers[term].update_state(value)
        self.feature_norm_tracker.update_state(ops.norm(features["embedding"], axis=-1))
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            features, losses = self._paired_forward(data, training=True)
            loss = self.optimizer.scale_loss(scale_loss_for_replicas(losses["loss"]))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_trackers(features, losses)

    def test_step(self, data):
        features, losses = self._paired_forward(data, training=False)
        return self._update_trackers(features, losses)

    # === Serialization ===

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "backbone": self.backbone_spec,
            "image_size": self.image_size,
            "branch_stage": self.branch_stage,
            "embedding_dim": self.embedding_dim,
            "attribute_names": list(self.attribute_names),
            "attention_key_dim": self.attention_key_dim,
            "attention_residual": self.attention_residual,
            "dropout": self.dropout,
            "adaface": dict(self.adaface_config),
            "loss_weights": dict(self.loss_weights),
            "distillation": self.distillation,
            "attribute_weights": self.attribute_weights,
            "attribute_positive_weights": self.attribute_positive_weights,
            "synchronized_batch_norm": self.synchronized_batch_norm,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        # Models saved before `stride2_padding` existed keep their padding.
        return cls(**{**config, "backbone": saved_backbone_spec(config["backbone"])})


def _merge_known(defaults, overrides, argument):
    """`defaults` updated with `overrides`, refusing keys it does not know."""
    merged = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            raise ValueError(
                f"Unknown key {key!r} in `{argument}`. Expected keys from "
                f"{sorted(defaults)}. Received: {argument}={overrides!r}"
            )
        merged[key] = float(value)
    return merged
