"""Starting a stage-1 `MultiBranchModel` from a pretrained iResNet (`model.init`).

The pretrained file is an `IResNetEmbedder` (what `catface import-weights`
writes) or an `IResNetBackbone`. The multi-branch model's shared trunk takes
its stem and first stages; each branch's own copy of the last stage(s)
(`fr_stageK_*`, `sb_stageK_*`) starts from the same pretrained stage K. The
embedding head (`embedding_*`) is taken too when its shapes fit (same image
size and embedding size): with `attention_residual` the FR branch's
self-attention starts as the identity (gamma = 0), so the FR embedding then
starts equal to the pretrained network's.
"""

import pathlib
import re

import keras

from catface_keras.atomic_files import check_keras_archive
from catface_keras.backbones.iresnet import (
    BLOCK_OPTIONS,
    IResNetBackbone,
    IResNetEmbedder,
    backbone_spec,
)

_STAGE_LAYER = re.compile(r"^stage(?P<stage>\d+)_(?P<rest>.+)$")
HEAD_PREFIX = "embedding"


class PretrainedBackboneError(ValueError):
    """The pretrained file cannot initialise the configured model."""


def load_pretrained_backbone(path):
    """Loads an `IResNetEmbedder` or `IResNetBackbone` `.keras` file.

    Raises:
        PretrainedBackboneError: the file is missing or holds another model.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise PretrainedBackboneError(
            f"Pretrained backbone {path} {'is a directory' if path.is_dir() else 'does not exist'}."
            " Write one with `catface import-weights --from adaface|insightface --arch ARCH "
            f"--checkpoint FILE --out {path}`."
        )
    try:
        # Keras reports a file that is no .keras archive as "File not found".
        check_keras_archive(path)
    except ValueError as error:
        raise PretrainedBackboneError(f"Pretrained backbone {error}") from None
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises several kinds for a bad file.
        raise PretrainedBackboneError(
            f"Cannot load pretrained backbone {path}: {error}"
        ) from error
    if not isinstance(model, (IResNetEmbedder, IResNetBackbone)):
        raise PretrainedBackboneError(
            f"{path} holds a {type(model).__name__}; a pretrained backbone is an "
            "IResNetEmbedder (from `catface import-weights`) or an IResNetBackbone."
        )
    return model


def pretrained_backbone_spec(configured, pretrained):
    """The backbone dict for a model initialised from `pretrained`.

    The configured preset fixes the depth and widths, which must match; the
    pretrained model's block options (shortcut, padding) are kept, since its
    weights were trained with them.
    """
    spec = backbone_spec(configured)
    theirs = pretrained.backbone_spec
    for key in ("stage_blocks", "stage_widths"):
        if list(spec[key]) != list(theirs[key]):
            raise PretrainedBackboneError(
                f"The pretrained backbone has {key} {list(theirs[key])} but the configured "
                f"backbone {configured!r} has {list(spec[key])}; set model.backbone to the "
                "pretrained architecture."
            )
    return {**spec, **{key: theirs[key] for key in BLOCK_OPTIONS}}


def _targets(name, branch_stage):
    """Multi-branch layer names that take the pretrained layer `name`."""
    match = _STAGE_LAYER.match(name)
    if match and int(match["stage"]) > branch_stage:
        return [f"{branch}_{name}" for branch in ("fr", "sb")]
    return [name]


def initialize_from_pretrained(model, pretrained):
    """Copies a pretrained iResNet's weights into a `MultiBranchModel`.

    Args:
        model: a `MultiBranchModel` built with `pretrained_backbone_spec`.
        pretrained: an `IResNetEmbedder` or `IResNetBackbone`.

    Returns:
        dict: `layers` (pretrained layers copied), `head` (whether the
        embedding head was copied; False when shapes differ or the file has none).

    Raises:
        PretrainedBackboneError: a trunk layer is missing or has other shapes.
    """
    if dict(model.backbone_spec) != dict(pretrained.backbone_spec):
        raise PretrainedBackboneError(
            f"The model's backbone {dict(model.backbone_spec)} differs from the pretrained "
            f"one {dict(pretrained.backbone_spec)}; build it with `pretrained_backbone_spec`."
        )
    model_layers = {layer.name: layer for layer in model.layers}
    trunk, head = [], []
    for layer in pretrained.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        targets = _targets(layer.name, model.branch_stage)
        (head if layer.name.startswith(HEAD_PREFIX) else trunk).append((layer, weights, targets))
    for layer, weights, targets in trunk:
        for target in targets:
            _check_shapes(layer.name, weights, model_layers.get(target), target)
    head_fits = bool(head) and all(
        target in model_layers
        and [tuple(w.shape) for w in model_layers[target].get_weights()]
        == [tuple(w.shape) for w in weights]
        for _, weights, targets in head
        for target in targets
    )
    copied = trunk + (head if head_fits else [])
    for _, weights, targets in copied:
        for target in targets:
            model_layers[target].set_weights(weights)
    return {"layers": len(copied), "head": head_fits}


def _check_shapes(name, weights, target_layer, target):
    if target_layer is None:
        raise PretrainedBackboneError(
            f"The model has no layer {target!r} for the pretrained layer {name!r}."
        )
    theirs = [tuple(w.shape) for w in weights]
    ours = [tuple(w.shape) for w in target_layer.get_weights()]
    if theirs != ours:
        raise PretrainedBackboneError(
            f"Pretrained layer {name!r} has weight shapes {theirs} but the model's "
            f"{target!r} has {ours}."
        )
