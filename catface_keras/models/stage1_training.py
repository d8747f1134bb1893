"""Stage 1 of CATFace in training: AdaFace, attribute losses and self-attention distillation.

`MultiBranchTraining` composes a `MultiBranchModel` and trains it on paired
batches: every HQ image comes with a degraded LQ copy; both carry the task
losses, and the LQ attention maps and values are pulled toward the HQ ones
(docs/PAPER.md section 3):

    L = lambda_FR * (L_FR + lambda_KD * L_KD^FR) + lambda_SB * (L_SB + lambda_KD * L_KD^SB)
"""

import keras
from keras import ops

from catface_keras.backbones.iresnet import NUM_STAGES
from catface_keras.choices import DISTILLATION_KINDS, LQ_IMAGES, TRAIN_ON
from catface_keras.degrade.askd import askd_low_resolution
from catface_keras.losses.attributes import masked_attribute_bce
from catface_keras.losses.distillation import (
    attention_distillation_loss,
    distance_of_kind,
    summed_map_distillation_loss,
)
from catface_keras.losses.recognizability import index_diversion_loss
from catface_keras.models.multibranch import (
    BRANCHES,
    MultiBranchModel,
    block_attention_key,
    stage_map_key,
)
from catface_keras.models.paired import PairedTraining, merge_known, paired_adaface_loss
from catface_keras.unit_vectors import l2_normalize_ops

DEFAULT_LOSS_WEIGHTS = {"fr": 3.0, "sb": 1.0, "distillation": 1.0}
STAGE1_LOSS_TERMS = ("loss", "fr_loss", "sb_loss", "fr_distillation", "sb_distillation")


def distillation_keys(network, distillation, distillation_stage):
    """Per branch, the `feature_network` maps a non-attention distillation kind compares.

    `"askd"`: every CBAM map of the branch; `"feature_*"`: the output of
    backbone stage `distillation_stage` (a shared stage under `fr` only);
    the attention kinds compare A and V instead (empty tuples).
    """
    outputs = network.feature_network.output
    keys = {}
    for branch in BRANCHES:
        if distillation == "askd":
            count = sum(1 for key in outputs if key.startswith(block_attention_key(branch, "")))
            keys[branch] = tuple(block_attention_key(branch, index) for index in range(count))
        elif distillation.startswith("feature_"):
            key = stage_map_key(branch, distillation_stage)
            keys[branch] = (key,) if key in outputs else ()
        else:
            keys[branch] = ()
    return keys


@keras.saving.register_keras_serializable(package="catface")
class MultiBranchTraining(PairedTraining):
    """Trains a `MultiBranchModel` (stage 1) on paired HQ/LQ batches.

    `fit` takes `({"hq": images, "lq": images}, {"identity": (batch,) ints,
    "attributes": (batch, A) ints in {-1, 0, 1}})` and reports every loss
    term as its own metric. The trained network is `self.network`.

    Args:
        network: the `MultiBranchModel` to train.
        num_classes, adaface, partial_fc_sample_rate: the margin head (see
            `PairedTraining`).
        loss_weights: dict with keys `fr` (3), `sb` (1), `distillation` (1).
        distillation: what the LQ pass is pulled towards the HQ pass (or the
            teacher's) on: `"cosine"` (the paper's) or `"l2"` for the branch
            self-attention A and V; `"feature_cosine"` or `"feature_l2"` for
            the output map of backbone stage `distillation_stage`; `"askd"`
            for the pre-sigmoid CBAM maps of every block (A-SKD, needs a
            network with `block_attention="cbam"`), summed over blocks.
        distillation_stage: 1-4, the stage whose output feature distillation
            compares (per branch when the branches have their own copy).
        train_on: `"paired"` (HQ and LQ images, the default) or `"hq"` (HQ
            images only, no distillation: an A-SKD teacher).
        lq_images: `"degraded"` (the batch's LQ images) or
            `"askd_low_resolution"` (the LQ images are replaced in training by
            A-SKD's shrunk-and-blurred copies of the HQ ones).
        index_diversion_weight: weight of the index-diversion loss (Chai et
            al. 2023, `losses.recognizability`), added to the FR loss; 0 turns
            it off. The unrecognisable-identity centre it needs is a running
            mean (momentum `unrecognizable_momentum`) of the normalised
            embeddings of 4-px-of-112 copies of the HQ images; the
            prototypes are the AdaFace class centres.
        unrecognizable_momentum: momentum of that running centre.
        attribute_weights: w_j per attribute (default all 1).
        attribute_positive_weights: optional weight of positive labels per attribute.

    Example:
        >>> training = MultiBranchTraining(MultiBranchModel("ir_18"), num_classes=10_000)
        >>> training.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        >>> training.fit(paired_dataset)
        >>> training.network.save("stage1.keras")
    """

    NETWORK_TYPES = (MultiBranchModel,)

    def __init__(
        self,
        network,
        num_classes,
        adaface=None,
        partial_fc_sample_rate=None,
        loss_weights=None,
        distillation="cosine",
        distillation_stage=NUM_STAGES,
        train_on="paired",
        lq_images="degraded",
        index_diversion_weight=0.0,
        unrecognizable_momentum=0.99,
        attribute_weights=None,
        attribute_positive_weights=None,
        **kwargs,
    ):
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
        super().__init__(network, num_classes, adaface, partial_fc_sample_rate, **kwargs)
        network = self.network
        if distillation == "askd" and network.block_attention != "cbam":
            raise ValueError(
                "`distillation='askd'` distils CBAM maps and needs a network built with "
                f"block_attention='cbam'. Received: block_attention={network.block_attention!r}"
            )
        for name, weights in (
            ("attribute_weights", attribute_weights),
            ("attribute_positive_weights", attribute_positive_weights),
        ):
            if weights is not None and len(weights) != len(network.attribute_names):
                raise ValueError(
                    f"`{name}` needs one value per attribute ({len(network.attribute_names)}). "
                    f"Received: {name}={weights!r}"
                )
        self.distill_keys = distillation_keys(network, distillation, distillation_stage)
        if lq_images == "askd_low_resolution":
            self.lq_seed_generator = keras.random.SeedGenerator(0, name="lq_seed_generator")
        if index_diversion_weight:
            self.unrecognizable_center = keras.Variable(
                ops.zeros((network.embedding_dim,)), trainable=False, name="unrecognizable_center"
            )
            self.unrecognizable_seed_generator = keras.random.SeedGenerator(
                1, name="unrecognizable_seed_generator"
            )
            self.LOSS_TERMS = (*STAGE1_LOSS_TERMS, "index_diversion")
            self.loss_trackers["index_diversion"] = keras.metrics.Mean(name="index_diversion")
        self._teacher = _Untracked(None)

        self.loss_weights = merge_known(DEFAULT_LOSS_WEIGHTS, loss_weights, "loss_weights")
        self.distillation = distillation
        self.distillation_stage = distillation_stage
        self.train_on = train_on
        self.lq_images = lq_images
        self.index_diversion_weight = float(index_diversion_weight)
        self.unrecognizable_momentum = float(unrecognizable_momentum)
        self.attribute_weights = None if attribute_weights is None else list(attribute_weights)
        self.attribute_positive_weights = (
            None if attribute_positive_weights is None else list(attribute_positive_weights)
        )

    LOSS_TERMS = STAGE1_LOSS_TERMS

    @property
    def teacher(self):
        """The frozen network whose HQ maps the LQ maps are pulled to (None: self-distillation)."""
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
            mine = self.network.feature_network.output
            theirs = teacher.feature_network.output
            keys = [*self.distill_keys["fr"], *self.distill_keys["sb"]]
            if self.distillation in ("cosine", "l2"):
                keys = [f"{b}_{part}" for b in BRANCHES for part in ("attention", "value")]
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
        for branch in BRANCHES:
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
            features: `network.feature_network` outputs on `concat([hq, lq])`
                (on the HQ images alone with `train_on="hq"`).
            targets: dict with `identity` `(batch,)` and optionally
                `attributes` `(batch, A)`; labels apply to HQ and LQ alike.
            batch_size: number of pairs (the HQ half of `features`).
            training: whether AdaFace updates its running statistics.
            target_features: the teacher's `feature_network` outputs on the HQ
                images; None distils towards the HQ half of `features`.

        Returns:
            dict of float32 scalars keyed by `LOSS_TERMS`.
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
        fr_loss_total = fr_loss
        if self.index_diversion_weight:
            extra["index_diversion"] = index_diversion_loss(
                features["embedding"],
                ops.stop_gradient(self.unrecognizable_center),
                ops.transpose(self.adaface.kernel),
                ops.concatenate([targets["identity"]] * copies, axis=0),
            )
            fr_loss_total = fr_loss + self.index_diversion_weight * extra["index_diversion"]
        weights = self.loss_weights
        total = weights["fr"] * (fr_loss_total + weights["distillation"] * distillation["fr"])
        total += weights["sb"] * (sb_loss + weights["distillation"] * distillation["sb"])
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
        embedding = ops.stop_gradient(self.network(unrecognizable, training=False)["embedding"])
        embedding = l2_normalize_ops(embedding)
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
        features = self.network.feature_network(images, training=training)
        target_features = None
        if self.teacher is not None and self.train_on == "paired":
            target_features = self.teacher.feature_network(hq, training=False)
        losses = self.compute_stage1_losses(
            features, targets, batch_size, training, target_features
        )
        return features, losses

    def get_config(self):
        return {
            **super().get_config(),
            "loss_weights": dict(self.loss_weights),
            "distillation": self.distillation,
            "distillation_stage": self.distillation_stage,
            "train_on": self.train_on,
            "lq_images": self.lq_images,
            "index_diversion_weight": self.index_diversion_weight,
            "unrecognizable_momentum": self.unrecognizable_momentum,
            "attribute_weights": self.attribute_weights,
            "attribute_positive_weights": self.attribute_positive_weights,
        }


class _Untracked:
    """Holds an object out of Keras' attribute tracking (and so out of saved files)."""

    def __init__(self, value):
        self.value = value
