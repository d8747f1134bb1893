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
from catface_keras.layers.perceptibility import PerceptibilityAttention
from catface_keras.layers.self_attention import SelfAttention2D
from catface_keras.losses.attributes import masked_attribute_bce
from catface_keras.degrade.askd import askd_low_resolution
from catface_keras.losses.recognizability import index_diversion_loss
from catface_keras.losses.distillation import (
    DISTILLATION_KINDS,
    attention_distillation_loss,
    distance_of_kind,
    summed_map_distillation_loss,
)
from catface_keras.models.paired import PairedTrainingModel, margin_head, paired_adaface_loss
from catface_keras.soft_biometrics import PAPER_ATTRIBUTES

DEFAULT_LOSS_WEIGHTS = {"fr": 3.0, "sb": 1.0, "distillation": 1.0}
DEFAULT_ADAFACE = {"margin": 0.4, "h": 0.333, "scale": 64.0, "t_alpha": 0.01}
STAGE1_LOSS_TERMS = ("loss", "fr_loss", "sb_loss", "fr_distillation", "sb_distillation")
TRAIN_ON = ("paired", "hq")
LQ_IMAGES = ("degraded", "askd_low_resolution")


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def embedding_head(
    features, embedding_dim, dropout, name="embedding", synchronized=False, created=None
):
    """The iResNet output layer: BN, dropout, flatten, dense, BN (no affine).

    `(batch, H, W, C)` -> `(batch, embedding_dim)`; the norm of the result
    is AdaFace's quality proxy, so it is not normalised here. The layers are
    appended to the list `created` when one is given.
    """
    layers = [
        batch_norm(f"{name}_bn_features", synchronized),
        keras.layers.Dropout(dropout, name=f"{name}_dropout"),
        keras.layers.Flatten(name=f"{name}_flatten"),
        keras.layers.Dense(embedding_dim, name=f"{name}_dense"),
        batch_norm(f"{name}_bn", synchronized, center=False, scale=False),
        # Keep the embedding float32 under mixed precision: its norm is a signal.
        keras.layers.Activation("linear", dtype="float32", name=name),
    ]
    if created is not None:
        created.extend(layers)
    return _apply(layers, features)


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
    if created is not None:
        created.extend(layers)
    return _apply(layers, features)


@keras.saving.register_keras_serializable(package="catface")
class MultiBranchModel(PairedTrainingModel):
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
        partial_fc_sample_rate: None for the dense AdaFace head; a rate in
            (0, 1] for Partial FC (`layers.partial_fc`): the class centres
            split over the replicas, each scoring its positives plus that
            fraction of its centres per step (for millions of identities).
        loss_weights: dict with keys `fr` (3), `sb` (1), `distillation` (1).
        distillation: what the LQ pass is pulled towards the HQ pass (or the
            teacher's) on: `"cosine"` (the paper's) or `"l2"` for the branch
            self-attention A and V; `"feature_cosine"` or `"feature_l2"` for
            the output map of backbone stage `distillation_stage`; `"askd"`
            for the pre-sigmoid CBAM maps of every block (A-SKD, needs
            `block_attention="cbam"`), summed over blocks.
        distillation_stage: 1-4, the stage whose output feature distillation
            compares (per branch when the branches have their own copy).
        block_attention: None, or `"cbam"` for a CBAM-iResNet (CBAM in every
            residual block).
        train_on: `"paired"` (HQ and LQ images, the default) or `"hq"` (HQ
            images only, no distillation: an A-SKD teacher).
        lq_images: `"degraded"` (the batch's LQ images) or
            `"askd_low_resolution"` (the LQ images are replaced in training by
            A-SKD's shrunk-and-blurred copies of the HQ ones).
        perceptibility_attention: re-weight the FR branch map by a learned
            spatial attention before the embedding head (Chai et al. 2023).
        index_diversion_weight: weight of the index-diversion loss (Chai et
            al. 2023, `losses.recognizability`), added to the FR loss; 0 turns
            it off. The unrecognisable-identity centre it needs is a running
            mean (momentum `unrecognizable_momentum`) of the normalised
            embeddings of 4-px-of-112 copies of the HQ images; the
            prototypes are the AdaFace class centres.
        unrecognizable_momentum: momentum of that running centre.
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
        partial_fc_sample_rate=None,
        loss_weights=None,
        distillation="cosine",
        distillation_stage=NUM_STAGES,
        block_attention=None,
        train_on="paired",
        lq_images="degraded",
        perceptibility_attention=False,
        index_diversion_weight=0.0,
        unrecognizable_momentum=0.99,
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
        if distillation_stage not in range(1, NUM_STAGES + 1):
            raise ValueError(
                f"`distillation_stage` must be an int in [1, {NUM_STAGES}]. "
                f"Received: distillation_stage={distillation_stage!r}"
            )
        if distillation == "askd" and block_attention != "cbam":
            raise ValueError(
                "`distillation='askd'` distils CBAM maps and needs block_attention='cbam'. "
                f"Received: block_attention={block_attention!r}"
            )
        for name, value, allowed in (
            ("train_on", train_on, TRAIN_ON),
            ("lq_images", lq_images, LQ_IMAGES),
        ):
            if value not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={value!r}")
        if partial_fc_sample_rate is not None and index_diversion_weight:
            raise ValueError(
                "`index_diversion_weight` needs every class centre on each replica, and "
                "`partial_fc_sample_rate` shards them; set one of the two. Received: "
                f"partial_fc_sample_rate={partial_fc_sample_rate!r}, "
                f"index_diversion_weight={index_diversion_weight!r}"
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
        # Per branch, the maps other distillation kinds than self-attention compare;
        # maps of the shared stages count once, under "fr".
        block_maps = {"fr": [], "sb": []}
        stage_maps = {"fr": [], "sb": []}
        for index in range(branch_stage):
            x = iresnet_stage(
                x, stage_widths[index], stage_blocks[index], f"stage{index + 1}", sync,
                **block_options(spec),
                block_attention=block_attention,
                attention_maps=block_maps["fr"],
            )
            if index + 1 == distillation_stage:
                stage_maps["fr"].append(x)
        branches = {}
        for branch in ("fr", "sb"):
            y = x
            for index in range(branch_stage, NUM_STAGES):
                y = iresnet_stage(
                    y, stage_widths[index], stage_blocks[index], f"{branch}_stage{index + 1}", sync,
                    **block_options(spec),
                    block_attention=block_attention,
                    attention_maps=block_maps[branch],
                )
                if index + 1 == distillation_stage:
                    stage_maps[branch].append(y)
            attended, attention, value = SelfAttention2D(
                key_dim=attention_key_dim,
                residual=attention_residual,
                name=f"{branch}_self_attention",
            )(y)
            branches[branch] = {"features": attended, "attention": attention, "value": value}
            if branch == "fr" and perceptibility_attention:
                attended, perceptibility = PerceptibilityAttention(name="fr_perceptibility")(
                    attended
                )
                branches[branch].update(features=attended, perceptibility=perceptibility)
        head_layers = []
        embedding = embedding_head(
            branches["fr"]["features"], embedding_dim, dropout, synchronized=sync,
            created=head_layers,
        )
        attribute_logits = attribute_head(
            branches["sb"]["features"], len(attribute_names), dropout, synchronized=sync,
            created=head_layers,
        )
        outputs = {"embedding": embedding, "attribute_logits": attribute_logits}
        # AdaFace is a training head outside the inference graph; it is an
        # attribute so that its class centres and running statistics are saved.
        self.adaface = margin_head(num_classes, embedding_dim, partial_fc_sample_rate, **adaface)
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
                **{
                    f"{branch}_distill_{index}": tensor
                    for branch, tensors in (
                        block_maps if distillation == "askd" else stage_maps
                    ).items()
                    for index, tensor in enumerate(tensors)
                },
            },
            name="feature_network",
        )
        self.distill_keys = {
            branch: tuple(
                f"{branch}_distill_{index}"
                for index in range(
                    len((block_maps if distillation == "askd" else stage_maps)[branch])
                )
            )
            for branch in ("fr", "sb")
        }
        if lq_images == "askd_low_resolution":
            self.lq_seed_generator = keras.random.SeedGenerator(0, name="lq_seed_generator")
        if index_diversion_weight:
            self.unrecognizable_center = keras.Variable(
                ops.zeros((embedding_dim,)), trainable=False, name="unrecognizable_center"
            )
            self.unrecognizable_seed_generator = keras.random.SeedGenerator(
                1, name="unrecognizable_seed_generator"
            )
        self._teacher = _Untracked(None)

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
        self.partial_fc_sample_rate = partial_fc_sample_rate
        self.loss_weights = loss_weights
        self.distillation = distillation
        self.distillation_stage = distillation_stage
        self.block_attention = block_attention
        self.train_on = train_on
        self.lq_images = lq_images
        self.perceptibility_attention = bool(perceptibility_attention)
        self.index_diversion_weight = float(index_diversion_weight)
        self.unrecognizable_momentum = float(unrecognizable_momentum)
        self.attribute_weights = None if attribute_weights is None else list(attribute_weights)
        self.attribute_positive_weights = (
            None if attribute_positive_weights is None else list(attribute_positive_weights)
        )
        self.synchronized_batch_norm = synchronized_batch_norm
        # The embedding and attribute heads, with AdaFace: what stage 2 keeps
        # frozen when it fine-tunes the rest (a tuple, so Keras does not track it).
        self.head_layers = (*head_layers, self.adaface)
        if self.index_diversion_weight:
            self.LOSS_TERMS = (*STAGE1_LOSS_TERMS, "index_diversion")
        self.init_trackers()

    # === Training ===

    LOSS_TERMS = STAGE1_LOSS_TERMS

    @property
    def teacher(self):
        """The frozen model whose HQ maps the LQ maps are pulled to (None: self-distillation)."""
        return self._teacher.value

    def set_teacher(self, teacher):
        """Distil towards a frozen `teacher` (a `MultiBranchModel` with the same maps).

        The teacher is used in training only and is not saved with this model.
        """
        if teacher is not None:
            if not isinstance(teacher, MultiBranchModel):
                raise ValueError(
                    f"`teacher` must be a MultiBranchModel. Received: {type(teacher).__name__}"
                )
            mine = self.feature_network.output
            theirs = teacher.feature_network.output
            keys = [*self.distill_keys["fr"], *self.distill_keys["sb"]]
            if self.distillation in ("cosine", "l2"):
                keys = [f"{b}_{part}" for b in ("fr", "sb") for part in ("attention", "value")]
            for key in keys:
                if key not in theirs or tuple(theirs[key].shape) != tuple(mine[key].shape):
                    raise ValueError(
                        f"The teacher has no map {key!r} shaped like the student's "
                        f"{tuple(mine[key].shape)}; build it with the same backbone, "
                        "block_attention and distillation."
                    )
            teacher.trainable = False
        self._teacher = _Untracked(teacher)

    def _distillation_terms(self, features, target_features, batch_size):
        """Per-branch distillation of the LQ half of `features` towards the targets."""
        student = {key: value[batch_size:] for key, value in features.items()}
        if target_features is None:
            target_features = {key: value[:batch_size] for key, value in features.items()}
        kind = distance_of_kind(self.distillation)
        terms = {}
        for branch in ("fr", "sb"):
            if self.distillation in ("cosine", "l2"):
                terms[branch] = attention_distillation_loss(
                    target_features[f"{branch}_attention"],
                    student[f"{branch}_attention"],
                    target_features[f"{branch}_value"],
                    student[f"{branch}_value"],
                    kind=kind,
                )
            else:
                keys = self.distill_keys[branch]
                terms[branch] = summed_map_distillation_loss(
                    [target_features[key] for key in keys], [student[key] for key in keys], kind
                )
        return terms

    def compute_stage1_losses(
        self, features, targets, batch_size, training, target_features=None
    ):
        """Every stage-1 loss term from the feature network's outputs.

        Args:
            features: `feature_network` outputs on `concat([hq, lq])` (on the
                HQ images alone with `train_on="hq"`).
            targets: dict with `identity` `(batch,)` and optionally
                `attributes` `(batch, A)`; labels apply to HQ and LQ alike.
            batch_size: number of pairs (the HQ half of `features`).
            training: whether AdaFace updates its running statistics.
            target_features: the teacher's `feature_network` outputs on the HQ
                images; None distils towards the HQ half of `features`.

        Returns:
            dict of float32 scalars keyed by `STAGE1_LOSS_TERMS`.
        """
        copies = 1 if self.train_on == "hq" else 2
        fr_loss = paired_adaface_loss(
            self.adaface, features["embedding"], targets["identity"], training, copies
        )
        if targets.get("attributes") is not None:
            sb_loss = masked_attribute_bce(
                ops.concatenate([targets["attributes"]] * copies, axis=0),
                features["attribute_logits"],
                self.attribute_weights,
                self.attribute_positive_weights,
            )
        else:
            sb_loss = ops.zeros((), "float32")
        if self.train_on == "hq":
            zero = ops.zeros((), "float32")
            distillation = {"fr": zero, "sb": zero}
        else:
            distillation = self._distillation_terms(features, target_features, batch_size)
        extra = {}
        if self.index_diversion_weight:
            extra["index_diversion"] = index_diversion_loss(
                features["embedding"],
                ops.stop_gradient(self.unrecognizable_center),
                ops.transpose(self.adaface.kernel),
                ops.concatenate([targets["identity"]] * copies, axis=0),
            )
            fr_loss_total = fr_loss + self.index_diversion_weight * extra["index_diversion"]
        else:
            fr_loss_total = fr_loss
        weights = self.loss_weights
        total = weights["fr"] * (fr_loss_total + weights["distillation"] * distillation["fr"]) + weights[
            "sb"
        ] * (sb_loss + weights["distillation"] * distillation["sb"])
        return {
            "loss": total,
            "fr_loss": fr_loss,
            "sb_loss": sb_loss,
            "fr_distillation": distillation["fr"],
            "sb_distillation": distillation["sb"],
            **extra,
        }

    def _update_unrecognizable_center(self, hq):
        """Running mean of normalised embeddings of unrecognisable (4 px of 112) copies."""
        unrecognizable = askd_low_resolution(
            hq, self.unrecognizable_seed_generator, fractions=(1 / 28,), blur_sigma=2.0
        )
        embedding = ops.stop_gradient(self(unrecognizable, training=False)["embedding"])
        embedding = embedding / ops.maximum(ops.norm(embedding, axis=-1, keepdims=True), 1e-12)
        momentum = self.unrecognizable_momentum
        self.unrecognizable_center.assign(
            momentum * self.unrecognizable_center + (1 - momentum) * ops.mean(embedding, axis=0)
        )

    def paired_losses(self, data, training):
        inputs, targets = data[0], data[1]
        hq, lq = inputs["hq"], inputs["lq"]
        batch_size = ops.shape(hq)[0]
        if self.lq_images == "askd_low_resolution" and training:
            lq = askd_low_resolution(hq, self.lq_seed_generator)
        if self.index_diversion_weight and training:
            self._update_unrecognizable_center(hq)
        images = hq if self.train_on == "hq" else ops.concatenate([hq, lq], axis=0)
        features = self.feature_network(images, training=training)
        target_features = None
        if self.teacher is not None and self.train_on == "paired":
            target_features = self.teacher.feature_network(hq, training=False)
        losses = self.compute_stage1_losses(
            features, targets, batch_size, training, target_features
        )
        return features, losses

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
            "partial_fc_sample_rate": self.partial_fc_sample_rate,
            "loss_weights": dict(self.loss_weights),
            "distillation": self.distillation,
            "distillation_stage": self.distillation_stage,
            "block_attention": self.block_attention,
            "train_on": self.train_on,
            "lq_images": self.lq_images,
            "perceptibility_attention": self.perceptibility_attention,
            "index_diversion_weight": self.index_diversion_weight,
            "unrecognizable_momentum": self.unrecognizable_momentum,
            "attribute_weights": self.attribute_weights,
            "attribute_positive_weights": self.attribute_positive_weights,
            "synchronized_batch_norm": self.synchronized_batch_norm,
            **self.config_tail(),
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


class _Untracked:
    """Holds an object out of Keras' attribute tracking (and so out of saved files)."""

    def __init__(self, value):
        self.value = value
