"""Experiment configuration: YAML into frozen dataclasses, validated once.

The defaults are the built-in demo (`catface demo`);
`training/configs/demo.yaml` spells the same values out. An unknown key or a
value of the wrong type stops at once with the dotted key in the message.
"""

import dataclasses
import types
import typing
from typing import Optional

import yaml

from catface_keras.soft_biometrics import PAPER_ATTRIBUTES


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training and held-out data: the built-in procedural faces or a real dataset.

    The `num_*` and `*images_per_identity` keys size the synthetic faces;
    the others serve real sources (`catface_keras.data.sources` says what
    each source reads and holds out).
    """

    source: str = "synthetic"
    num_train_identities: int = 240
    num_test_identities: int = 60
    images_per_identity: int = 12
    test_images_per_identity: int = 8
    image_size: int = 48
    seed: int = 0
    # CelebA root, insightface .rec file, image-folder root or TFRecord directory.
    path: Optional[str] = None
    # image_folder: per-image `path,attr,...`; recordio: per-class `identity,attr,...`.
    attributes_csv: Optional[str] = None
    # An image folder of identities unseen in training, for held-out verification.
    heldout_path: Optional[str] = None
    heldout_attributes_csv: Optional[str] = None
    # Held-out images kept (whole identities), None for all.
    max_heldout_images: Optional[int] = None
    # TFRecord shuffle buffer (random-access sources permute fully).
    shuffle_buffer: int = 10000


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The stage-1 network (`MultiBranchModel` arguments)."""

    backbone: str = "ir_tiny"
    branch_stage: int = 3
    embedding_dim: int = 128
    attention_key_dim: Optional[int] = None
    attention_residual: bool = True
    dropout: float = 0.2
    # Batch moments over all replicas: data-parallel training then matches one device.
    synchronized_batch_norm: bool = False
    attribute_names: list[str] = dataclasses.field(default_factory=lambda: list(PAPER_ATTRIBUTES))


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Stage-1 loss weights (PAPER.md section 3) and AdaFace (section 4)."""

    fr_weight: float = 3.0
    sb_weight: float = 1.0
    distillation_weight: float = 1.0
    distillation: str = "cosine"
    attribute_weights: Optional[list[float]] = None
    attribute_positive_weights: Optional[list[float]] = None
    adaface_margin: float = 0.4
    adaface_h: float = 0.333
    adaface_scale: float = 64.0
    adaface_t_alpha: float = 0.01


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """SGD with momentum, step decay at epoch milestones, weight decay off BN.

    The paper trains with learning rate 0.1 at batch 512; the demo's batch
    of 64 pairs (128 images) takes 0.02. Gradients are clipped to a
    global norm of 5, as insightface's arcface_torch does (0 disables).
    """

    learning_rate: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    global_clipnorm: float = 5.0
    lr_milestones: list[int] = dataclasses.field(default_factory=lambda: [13])
    lr_decay_factor: float = 0.1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop."""

    epochs: int = 16
    batch_size: int = 64
    seed: int = 0
    # "auto" uses MirroredStrategy when more than one GPU is visible.
    distribution: str = "auto"
    # "auto": mixed_float16 on GPU, mixed_bfloat16 on CPUs with native bf16,
    # float32 otherwise; or a Keras policy name (null: the global policy).
    mixed_precision: Optional[str] = "auto"


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Held-out verification."""

    num_pairs: int = 3000
    flip: bool = True
    batch_size: int = 128
    seed: int = 1


@dataclasses.dataclass(frozen=True)
class Stage2Config:
    """Stage 2 (PAPER.md section 5): the fusion module and its schedule.

    `fusion` is one of FUSION_KINDS; the next eight keys are the fusion
    options (each kind reads the ones that apply). Stage 2 keeps the
    optimizer section's momentum, weight decay and clipping, with its own
    learning rate, milestones and epochs.
    """

    fusion: str = "catf"
    num_heads: int = 4
    key_dim: Optional[int] = None
    expansion: int = 4
    groups: int = 4
    use_mffnl: bool = True
    use_caf: bool = True
    # Residuals around MFFNL and CAF (x + f(x)); false gives the literal paper form.
    residual: bool = True
    se_reduction: int = 16
    embedding_dim: Optional[int] = None  # default: stage 1's
    # AdaFace's head dropout; the fused head overfits the demo's 240 identities
    # at stage 1's 0.2 (None: stage 1's value).
    dropout: Optional[float] = 0.4
    # Frozen stage 1 by default; fine-tuning scales its gradients by the multiplier.
    train_stage1: bool = False
    stage1_lr_multiplier: float = 0.1
    epochs: int = 8
    learning_rate: float = 0.02
    lr_milestones: list[int] = dataclasses.field(default_factory=lambda: [6])


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    stage2: Stage2Config = dataclasses.field(default_factory=Stage2Config)

    def replace(self, section, **changes):
        """A copy with fields of one section changed, validated like a file."""
        values = dataclasses.asdict(getattr(self, section))
        values.update(changes)
        return dataclasses.replace(
            self, **{section: _build(type(getattr(self, section)), values, section)}
        )


# The fusion kinds of catface_keras.models.fusion, spelled out here so that
# reading a config does not load TensorFlow (a test keeps the two equal).
FUSION_KINDS = ("catf", "concat", "add", "se", "cross_attention", "ffm")

SECTION_CHOICES = {
    "data.source": ("synthetic", "celeba", "recordio", "image_folder", "tfrecord"),
    "loss.distillation": ("cosine", "l2"),
    "train.distribution": ("auto", "none", "mirrored", "multi_worker"),
    "train.mixed_precision": (None, "auto", "float32", "mixed_float16", "mixed_bfloat16"),
    "stage2.fusion": FUSION_KINDS,
}

POSITIVE = {
    "data.num_train_identities",
    "data.num_test_identities",
    "data.images_per_identity",
    "data.test_images_per_identity",
    "data.image_size",
    "data.max_heldout_images",
    "data.shuffle_buffer",
    "model.embedding_dim",
    "optimizer.learning_rate",
    "train.epochs",
    "train.batch_size",
    "evaluation.num_pairs",
    "evaluation.batch_size",
    "stage2.num_heads",
    "stage2.key_dim",
    "stage2.expansion",
    "stage2.groups",
    "stage2.se_reduction",
    "stage2.embedding_dim",
    "stage2.epochs",
    "stage2.learning_rate",
}


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


def load_config(path):
    """Reads a YAML file into an `ExperimentConfig`; missing keys keep defaults."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as error:
        raise ConfigError(f"Cannot read config file {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {path} is not valid YAML: {error}") from error
    try:
        return config_from_dict(raw or {})
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def config_from_dict(raw):
    return _build(ExperimentConfig, raw, "")


def config_to_dict(config):
    return dataclasses.asdict(config)


def _build(cls, raw, prefix):
    if not isinstance(raw, dict):
        raise ConfigError(f"`{prefix or 'config'}` must be a mapping. Received: {raw!r}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(
                f"unknown key `{path}`. Expected one of: {', '.join(sorted(fields))}"
            )
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            values[key] = _build(annotation, value, path)
        else:
            values[key] = _check_value(value, annotation, path)
            choices = SECTION_CHOICES.get(path)
            if choices is not None and values[key] not in choices:
                raise ConfigError(f"`{path}` must be one of {choices}. Received: {value!r}")
            if path in POSITIVE and values[key] is not None and values[key] <= 0:
                raise ConfigError(f"`{path}` must be positive. Received: {value!r}")
    return cls(**values)


def _check_value(value, annotation, path):
    """Returns `value` (ints widened to float where a float is expected)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, path)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"`{path}` must be a list. Received: {value!r}")
        (item,) = typing.get_args(annotation)
        return [_check_value(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"`{path}` must be {annotation.__name__}. Received: {value!r}")
    if not isinstance(value, annotation):
        raise ConfigError(
            f"`{path}` must be {annotation.__name__}. Received: {value!r} "
            f"({type(value).__name__})"
        )
    return value
