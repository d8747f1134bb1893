"""Experiment configuration: YAML into frozen dataclasses, validated once.

The defaults are the built-in demo (`catface demo`);
`training/configs/demo.yaml` spells the same values out. Everything here is
checked before TensorFlow loads: an unknown or repeated key, a value of the
wrong type or out of its range, a choice not in `catface_keras.choices`, and
combinations that cannot train (a batch larger than the synthetic training
set, a held-out set too small for TAR at FAR=1e-2) stop at once with the
dotted key, the value and what was expected in the message.

Relative paths in a file (`data.path`, `data.attributes_csv`, ...) are
relative to the file's folder.
"""

import dataclasses
import math
import os
import pathlib
import types
import typing
from typing import Optional, Union

import yaml

from catface_keras import choices
from catface_keras.data import checks
from catface_keras.data.registry import TRAIN, source_names
from catface_keras.degradation_config import DegradationConfig, check_values
from catface_keras.soft_biometrics import BALANCED_POSITIVE_WEIGHTS, PAPER_ATTRIBUTES


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training and held-out data: the built-in procedural faces or a real dataset.

    The `num_*` and `*images_per_identity` keys size the synthetic faces;
    the others serve real sources (`catface_keras.data.registry` lists them,
    `catface_keras.data.sources` says what training reads and holds out).
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
    # Images whose header announces more pixels are skipped without being decoded.
    max_image_pixels: int = 40_000_000


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
    block_attention: Optional[str] = None  # "cbam": CBAM-iResNet (A-SKD)
    perceptibility_attention: bool = False  # Chai et al. 2023
    attribute_names: list[str] = dataclasses.field(default_factory=lambda: list(PAPER_ATTRIBUTES))
    # A pretrained iResNet (.keras from `catface import-weights`) that stage 1 starts from.
    init: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Stage-1 loss weights (docs/PAPER.md section 3) and AdaFace (section 4)."""

    fr_weight: float = 3.0
    sb_weight: float = 1.0
    distillation_weight: float = 1.0
    distillation: str = "cosine"
    # Feature distillation's backbone stage; A-SKD's frozen teacher (.keras of a
    # stage-1 run with train_on: hq); see MultiBranchModel for these four.
    distillation_stage: int = 4
    teacher: Optional[str] = None
    train_on: str = "paired"
    lq_images: str = "degraded"
    index_diversion_weight: float = 0.0  # Chai et al. 2023; 0: off
    attribute_weights: Optional[list[float]] = None
    # Per attribute, or "balanced": negatives / positives among the training labels.
    attribute_positive_weights: Optional[Union[list[float], str]] = None
    adaface_margin: float = 0.4
    adaface_h: float = 0.333
    adaface_scale: float = 64.0
    adaface_t_alpha: float = 0.01
    # Partial FC: null trains the dense AdaFace head; a rate in (0, 1] splits the
    # class centres over the replicas, each scoring its positives plus that
    # fraction of its centres per step (millions of identities).
    partial_fc_sample_rate: Optional[float] = None


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
    """Stage 2 (docs/PAPER.md section 5): the fusion module and its schedule.

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
    # CATF's residual branches start at zero (see layers/catf.py), so stage 2
    # starts from the stage-1 maps instead of a random re-mix of them (which cost
    # 0.02-0.04 LQ-LQ TAR on the built-in faces; README, "Ablations").
    identity_init: bool = True
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
    # The LQ synthesis of training and held-out evaluation (`catface_keras.degrade.degrade`).
    degrade: DegradationConfig = dataclasses.field(default_factory=DegradationConfig)

    def replace(self, section, **changes):
        """A copy with fields of one section changed, validated like a file."""
        values = dataclasses.asdict(getattr(self, section))
        values.update(changes)
        config = dataclasses.replace(
            self, **{section: _build(type(getattr(self, section)), values, section)}
        )
        check_experiment(config)
        return config


# Kept importable from here (the CLI's --fusion choices).
FUSION_KINDS = choices.FUSION_KINDS

SECTION_CHOICES = {
    "data.source": source_names(TRAIN),
    "model.backbone": choices.BACKBONES,
    "model.branch_stage": choices.BRANCH_STAGES,
    "model.block_attention": choices.BLOCK_ATTENTIONS,
    "loss.distillation": choices.DISTILLATION_KINDS,
    "loss.distillation_stage": choices.DISTILLATION_STAGES,
    "loss.train_on": choices.TRAIN_ON,
    "loss.lq_images": choices.LQ_IMAGES,
    "train.distribution": choices.DISTRIBUTIONS,
    "train.mixed_precision": choices.DTYPE_POLICIES,
    "stage2.fusion": choices.FUSION_KINDS,
}

POSITIVE = {
    "data.num_train_identities",
    "data.num_test_identities",
    "data.images_per_identity",
    "data.test_images_per_identity",
    "data.image_size",
    "data.max_heldout_images",
    "data.shuffle_buffer",
    "data.max_image_pixels",
    "model.embedding_dim",
    "model.attention_key_dim",
    "optimizer.learning_rate",
    "train.epochs",
    "train.batch_size",
    "evaluation.num_pairs",
    "evaluation.batch_size",
    "loss.adaface_scale",
    "stage2.num_heads",
    "stage2.key_dim",
    "stage2.expansion",
    "stage2.groups",
    "stage2.se_reduction",
    "stage2.embedding_dim",
    "stage2.epochs",
    "stage2.learning_rate",
}


def _half_open_unit(value):
    return 0.0 <= value < 1.0


def _unit(value):
    return 0.0 <= value <= 1.0


def _non_negative(value):
    return value >= 0


MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 20

# Dotted key -> (what is expected, test); None values (optional keys) are not tested.
RANGES = {
    "model.dropout": ("in [0, 1)", _half_open_unit),
    "stage2.dropout": ("in [0, 1) or null (stage 1's)", _half_open_unit),
    "optimizer.momentum": (">= 0", _non_negative),
    "optimizer.weight_decay": (">= 0", _non_negative),
    "optimizer.global_clipnorm": (">= 0 (0 disables clipping)", _non_negative),
    "optimizer.lr_decay_factor": ("in (0, 1]", lambda value: 0.0 < value <= 1.0),
    "loss.fr_weight": (">= 0", _non_negative),
    "loss.sb_weight": (">= 0", _non_negative),
    "loss.distillation_weight": (">= 0", _non_negative),
    "loss.adaface_margin": (">= 0", _non_negative),
    "loss.adaface_h": ("in [0, 1]", _unit),
    "loss.adaface_t_alpha": ("in [0, 1]", _unit),
    "loss.partial_fc_sample_rate": ("in (0, 1] or null (the dense head)",
                                    lambda value: 0.0 < value <= 1.0),
    "stage2.stage1_lr_multiplier": (">= 0", _non_negative),
    "data.seed": (">= 0", _non_negative),
    "train.seed": (">= 0", _non_negative),
    "evaluation.seed": (">= 0", _non_negative),
    # Upper bounds: a typo such as 1e20 epochs must fail here, not after TensorFlow loads.
    "train.epochs": (f"at most {MAX_EPOCHS}", lambda value: value <= MAX_EPOCHS),
    "stage2.epochs": (f"at most {MAX_EPOCHS}", lambda value: value <= MAX_EPOCHS),
    "train.batch_size": (f"at most {MAX_BATCH_SIZE}", lambda value: value <= MAX_BATCH_SIZE),
    "evaluation.batch_size": (f"at most {MAX_BATCH_SIZE}",
                              lambda value: value <= MAX_BATCH_SIZE),
}


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


def load_config(path):
    """Reads a YAML file into an `ExperimentConfig`; missing keys keep defaults.

    Relative paths in the `data` section and `model.init` are resolved against the
    file's folder.
    """
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"Cannot read config file {path}: {error.strerror}") from error
    if b"\0" in raw:
        raise ConfigError(f"Config file {path} is a binary file, not YAML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"Config file {path} is not UTF-8 text (byte {error.start}); expected a YAML file"
        ) from None
    try:
        values = yaml.load(text, Loader=_UniqueKeyLoader)
        return config_from_dict(values or {}, base_dir=path.resolve().parent)
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {path} is not valid YAML: {error}") from None
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def config_from_dict(raw, base_dir=None):
    """An `ExperimentConfig` from parsed YAML, validated.

    Args:
        raw: a dict of sections.
        base_dir: folder that relative data paths are resolved against (None: left as
            they are, i.e. relative to the working directory).
    """
    config = _build(ExperimentConfig, raw, "")
    if base_dir is not None:
        config = _resolve_paths(config, pathlib.Path(base_dir))
    check_experiment(config)
    return config


def config_to_dict(config):
    """Plain YAML types (ranges as lists), e.g. for the run's `config.yaml`."""
    return _plain(dataclasses.asdict(config))


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# Data keys that name files or folders.
PATH_KEYS = ("path", "attributes_csv", "heldout_path", "heldout_attributes_csv")


def _resolve_paths(config, base_dir):
    changes = {}
    for key in PATH_KEYS:
        value = getattr(config.data, key)
        if value is not None:
            expanded = pathlib.Path(os.path.expanduser(value))
            changes[key] = os.path.normpath(base_dir / expanded)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, **changes))
    if config.model.init is not None:
        init = os.path.normpath(base_dir / pathlib.Path(os.path.expanduser(config.model.init)))
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, init=init))
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if first is not None:
                raise ConfigError(
                    f"duplicate key `{key}` on line {line} (first given on line {first}); "
                    "each key may appear once"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


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
            continue
        values[key] = _check_value(value, annotation, path)
        choices_ = SECTION_CHOICES.get(path)
        if choices_ is not None and values[key] not in choices_:
            raise ConfigError(
                f"`{path}` must be one of {choices_}. Received: {path}={value!r}"
            )
        if values[key] is None:
            continue
        if path in POSITIVE and values[key] <= 0:
            raise ConfigError(f"`{path}` must be positive. Received: {path}={value!r}")
        if path in RANGES:
            expected, test = RANGES[path]
            if not test(values[key]):
                raise ConfigError(f"`{path}` must be {expected}. Received: {path}={value!r}")
    if cls is DegradationConfig:
        try:
            check_values(values, key_prefix=f"{prefix}.")
        except ValueError as error:
            raise ConfigError(str(error)) from None
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
    if origin is tuple:
        items = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise ConfigError(
                f"`{path}` must be a list of {len(items)} values [low, high]. Received: {value!r}"
            )
        return tuple(
            _check_value(v, item, f"{path}[{i}]") for i, (v, item) in enumerate(zip(value, items))
        )
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"`{path}` must be {annotation.__name__}. Received: {value!r}")
    if not isinstance(value, annotation):
        raise ConfigError(
            f"`{path}` must be {annotation.__name__}. Received: {value!r} "
            f"({type(value).__name__})"
        )
    if annotation is float and math.isnan(value):
        raise ConfigError(f"`{path}` must be a number, not NaN. Received: {value!r}")
    return value


def check_experiment(config):
    """Checks what single keys cannot: sizes and lists that must agree with each other.

    Raises:
        ConfigError: naming the dotted key, its value and what was expected.
    """
    data, model, loss = config.data, config.model, config.loss
    multiple = choices.IMAGE_SIZE_MULTIPLE
    if data.image_size % multiple:
        raise ConfigError(
            f"`data.image_size` must be a multiple of {multiple} (the backbone halves the "
            f"image four times; {multiple} is the smallest). Received: "
            f"data.image_size={data.image_size}"
        )
    _data_check(checks.check_attribute_names, data.source, model.attribute_names)
    if config.stage2.identity_init and not config.stage2.residual:
        raise ConfigError(
            "`stage2.identity_init` zeroes CATF's residual branches and needs "
            "stage2.residual: true; set stage2.identity_init: false for the literal form. "
            "Received: stage2.residual=False"
        )
    if loss.partial_fc_sample_rate is not None and loss.index_diversion_weight:
        raise ConfigError(
            "`loss.index_diversion_weight` needs every class centre on each replica and "
            "`loss.partial_fc_sample_rate` shards them; set one of the two. Received: "
            f"loss.partial_fc_sample_rate={loss.partial_fc_sample_rate}, "
            f"loss.index_diversion_weight={loss.index_diversion_weight}"
        )
    if isinstance(loss.attribute_positive_weights, str) and (
        loss.attribute_positive_weights != BALANCED_POSITIVE_WEIGHTS
    ):
        raise ConfigError(
            f"`loss.attribute_positive_weights` must be a list of weights, one per attribute, "
            f"or {BALANCED_POSITIVE_WEIGHTS!r}. "
            f"Received: loss.attribute_positive_weights={loss.attribute_positive_weights!r}"
        )
    for key in ("attribute_weights", "attribute_positive_weights"):
        weights = getattr(loss, key)
        if weights is None or isinstance(weights, str):
            continue
        if len(weights) != len(model.attribute_names):
            raise ConfigError(
                f"`loss.{key}` must have one weight per attribute of model.attribute_names "
                f"({len(model.attribute_names)}). Received: loss.{key}={weights}"
            )
        if any(weight < 0 for weight in weights):
            raise ConfigError(f"`loss.{key}` must be >= 0. Received: loss.{key}={weights}")
    for key, milestones in (
        ("optimizer.lr_milestones", config.optimizer.lr_milestones),
        ("stage2.lr_milestones", config.stage2.lr_milestones),
    ):
        if any(value < 1 for value in milestones) or any(
            later <= earlier for earlier, later in zip(milestones, milestones[1:])
        ):
            raise ConfigError(
                f"`{key}` must be increasing epochs >= 1. Received: {key}={milestones}"
            )
    minimum = choices.MIN_VERIFICATION_PAIRS
    if config.evaluation.num_pairs < minimum:
        raise ConfigError(
            f"`evaluation.num_pairs` must be at least {minimum}: TAR at FAR=1e-2 needs "
            f"{minimum} impostor pairs. Received: evaluation.num_pairs="
            f"{config.evaluation.num_pairs}"
        )
    if data.source == "synthetic":
        _data_check(checks.check_synthetic_sizes, data, config.train.batch_size)
    else:
        _data_check(checks.check_heldout_size, data)


def _data_check(check, *args):
    """Runs a check of `catface_keras.data.checks`; its ValueError becomes a ConfigError."""
    try:
        check(*args)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_data_files(config):
    """Checks, before any work, that the files a config names exist and fit it
    (`catface_keras.data.checks.check_data_files`).

    Raises:
        ConfigError: naming the key and the path.
    """
    _data_check(checks.check_data_files, config.data, config.model.attribute_names)
    _data_check(checks.check_batch_fits, config.data, config.train.batch_size)
