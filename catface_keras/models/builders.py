"""Models and their optimiser built from an `ExperimentConfig`: what a training stage trains.

`build_stage1_model` builds the multi-branch network (`model.*`), started
from a pretrained iResNet when `model.init` is set, inside its training model
(`loss.*`); `load_stage1_model` reads a trained network back for stage 2 or as
a teacher; `build_stage2_model` puts the fusion module (`stage2.*`) on top of
it, inside its own training model;
`make_optimizer` is the SGD both stages train with.
"""

import pathlib

import keras

from catface_keras.distribution import CrossReplicaClipSGD
from catface_keras.models.fusion import DEFAULT_FUSION_OPTIONS, FusionModel
from catface_keras.models.loading import load_model
from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.stage1_training import MultiBranchTraining
from catface_keras.models.stage2_training import FusionTraining
from catface_keras.weights.pretrained import (
    initialize_from_pretrained,
    load_pretrained_backbone,
    pretrained_backbone_spec,
)


class MissingStage1Error(FileNotFoundError):
    """Stage 2 was asked for without a trained stage-1 model."""


def make_optimizer(config, steps_per_epoch):
    """SGD with momentum and a piecewise-constant (step) learning rate."""
    boundaries = [milestone * steps_per_epoch for milestone in config.lr_milestones]
    if boundaries != sorted(boundaries) or any(b <= 0 for b in boundaries):
        raise ValueError(
            "`optimizer.lr_milestones` must be increasing positive epochs. "
            f"Received: lr_milestones={config.lr_milestones}"
        )
    learning_rate = config.learning_rate
    if boundaries:
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries,
            [config.learning_rate * config.lr_decay_factor**i for i in range(len(boundaries) + 1)],
        )
    return CrossReplicaClipSGD(
        learning_rate=learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay or None,
        global_clipnorm=config.global_clipnorm or None,
    )


def exclude_batch_norm_from_weight_decay(optimizer, model):
    """Weight decay skips BN parameters, as in the official AdaFace recipe."""
    batch_norm_variables = [
        variable
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
        for variable in layer.trainable_variables
    ]
    optimizer.exclude_from_weight_decay(var_list=batch_norm_variables)


def adaface_arguments(loss):
    """The `AdaFace` arguments of a `LossConfig`."""
    return {
        "margin": loss.adaface_margin,
        "h": loss.adaface_h,
        "scale": loss.adaface_scale,
        "t_alpha": loss.adaface_t_alpha,
    }


def build_stage1_model(config, num_classes):
    """The stage-1 training model: a `MultiBranchTraining` around the `MultiBranchModel`.

    The network (`model.*`) starts from `model.init`'s pretrained iResNet when
    set; the training model holds the margin head and losses (`loss.*`).
    """
    model_config, loss = config.model, config.loss
    pretrained, backbone = None, model_config.backbone
    if model_config.init:
        pretrained = load_pretrained_backbone(model_config.init)
        backbone = pretrained_backbone_spec(backbone, pretrained)
    network = MultiBranchModel(
        backbone=backbone,
        image_size=config.data.image_size,
        branch_stage=model_config.branch_stage,
        embedding_dim=model_config.embedding_dim,
        attribute_names=model_config.attribute_names,
        attention_key_dim=model_config.attention_key_dim,
        attention_residual=model_config.attention_residual,
        dropout=model_config.dropout,
        block_attention=model_config.block_attention,
        perceptibility_attention=model_config.perceptibility_attention,
        synchronized_batch_norm=model_config.synchronized_batch_norm,
    )
    if pretrained is not None:
        initialize_from_pretrained(network, pretrained)
    model = MultiBranchTraining(
        network,
        num_classes=num_classes,
        adaface=adaface_arguments(loss),
        partial_fc_sample_rate=loss.partial_fc_sample_rate,
        loss_weights={
            "fr": loss.fr_weight,
            "sb": loss.sb_weight,
            "distillation": loss.distillation_weight,
        },
        distillation=loss.distillation,
        distillation_stage=loss.distillation_stage,
        train_on=loss.train_on,
        lq_images=loss.lq_images,
        index_diversion_weight=loss.index_diversion_weight,
        attribute_weights=loss.attribute_weights,
        attribute_positive_weights=loss.attribute_positive_weights,
    )
    if loss.teacher:
        model.set_teacher(load_stage1_model(loss.teacher, role="teacher"))
    return model


def build_stage2_model(config, stage1, num_classes):
    """The stage-2 training model: the `FusionModel` of `config.stage2` on top of `stage1`,
    in a `FusionTraining` with its own (fused) margin head."""
    stage2, loss = config.stage2, config.loss
    network = FusionModel(
        stage1,
        fusion=stage2.fusion,
        fusion_options={key: getattr(stage2, key) for key in DEFAULT_FUSION_OPTIONS},
        embedding_dim=stage2.embedding_dim,
        dropout=stage2.dropout,
    )
    return FusionTraining(
        network,
        num_classes=num_classes,
        adaface=adaface_arguments(loss),
        partial_fc_sample_rate=loss.partial_fc_sample_rate,
        train_stage1=stage2.train_stage1,
        stage1_lr_multiplier=stage2.stage1_lr_multiplier,
    )


def check_stage1_file(path):
    """Raises `MissingStage1Error` unless the stage-1 model file `path` exists."""
    if not pathlib.Path(path).is_file():
        raise MissingStage1Error(
            f"Stage 2 starts from a trained stage-1 model, and {path} does not exist. "
            "Train stage 1 first (catface train --config FILE --out DIR) or pass "
            "--init DIR/stage1.keras."
        )


def load_stage1_model(path, role="stage 2's start"):
    """Loads the stage-1 network that stage 2 (or a student, as its teacher) starts from."""
    if role == "teacher" and not pathlib.Path(path).is_file():
        raise MissingStage1Error(
            f"loss.teacher names {path}, which does not exist. Train the teacher first "
            "(a stage-1 run with loss.train_on: hq) and give its stage1.keras."
        )
    check_stage1_file(path)
    try:
        model = load_model(path)
    except ValueError as error:
        raise MissingStage1Error(str(error)) from None
    if not isinstance(model, MultiBranchModel):
        raise MissingStage1Error(
            f"{path} holds a {type(model).__name__}, not a stage-1 MultiBranchModel."
        )
    return model
