"""Published PyTorch iResNet checkpoints -> `IResNetEmbedder` (AdaFace, insightface).

The two layouts, from their public definitions (AdaFace `net.py`, insightface
`recognition/arcface_torch/backbones/iresnet.py`), name the same network
differently:

| package layer                  | AdaFace (`model.` in a Lightning `.ckpt`) | insightface `backbone.pth`  |
| ------------------------------ | ----------------------------------------- | --------------------------- |
| stem_conv / stem_bn / _prelu   | input_layer.0 / .1 / .2                   | conv1 / bn1 / prelu         |
| stageS_blockB_bn1 ... _bn3     | body.N.res_layer.0, 1, 2, 3(prelu), 4, 5  | layerS.(B-1).bn1 ... bn3    |
| stageS_blockB_shortcut_conv/bn | body.N.shortcut_layer.0 / .1              | layerS.(B-1).downsample.0/1 |
| embedding_bn_features          | output_layer.0                            | bn2                         |
| embedding_dense                | output_layer.3                            | fc                          |
| embedding_bn (no affine)       | output_layer.4 (BatchNorm1d, affine=False)| features (affine, folded)   |

(N counts blocks across stages.) AdaFace's first block, 64 -> 64 at stride 2,
subsamples its shortcut (MaxPool2d(1, 2)); insightface's has a 1x1 conv + BN:
the imported model's `shortcut` follows the source. Both use BN eps 1e-5 and
dropout 0.4 (AdaFace) or 0 (insightface) before the dense layer, which only
matters when training on.

Layout changes: conv kernels OIHW -> HWIO; PReLU slopes `(C,)` -> `(1, 1, C)`;
the dense layer's input rows permuted from PyTorch's NCHW flatten order to
Keras' NHWC; insightface's `features` BN (weight frozen at 1, a learned bias)
folded into the running statistics of the package's affine-free BN, exactly.
AdaFace's models take BGR pixels: the stem kernel's input channels are
reversed, so the imported model takes RGB like every model in the package
(its pixel normalisation, (x / 255 - 0.5) / 0.5, is the same for all three
channels and for both sources).
"""

import math
import pathlib

import numpy as np

from catface_keras.atomic_files import require_directory_path, save_model_atomically
from catface_keras.backbones.iresnet import (
    IRESNET_PRESETS,
    NUM_STAGES,
    IResNetEmbedder,
    backbone_spec,
)
from catface_keras.weights.names import ARCHS, SOURCE_CHANNEL_ORDER, SOURCES
from catface_keras.weights.torch_checkpoint import PendingTensor, TorchCheckpoint

SOURCE_SHORTCUT = {"adaface": "subsample", "insightface": "conv"}
SOURCE_DROPOUT = {"adaface": 0.4, "insightface": 0.0}
TORCH_BN_EPSILON = 1e-5

# PyTorch parameter names of each kind of module.
KIND_KEYS = {
    "conv": ("weight",),
    "bn": ("weight", "bias", "running_mean", "running_var"),
    "prelu": ("weight",),
    "dense": ("weight", "bias"),
    "bn1d": ("running_mean", "running_var"),  # affine=False
    "bn1d_affine": ("weight", "bias", "running_mean", "running_var"),
}
# Counters that BN modules carry and the import does not need.
IGNORED_SUFFIX = "num_batches_tracked"
# Bounds on the head read from the checkpoint before the model is built: published
# iResNets embed in 512 dimensions from 7x7 maps (112 px faces).
MAX_EMBEDDING_DIM = 8192
MAX_FEATURE_MAP_SIDE = 32


class WeightImportError(ValueError):
    """The checkpoint does not fit the requested architecture."""


def torch_layout(source, spec, has_shortcut_conv):
    """`(torch module prefix, kind, package layer name)` for every module with weights.

    Args:
        source: one of `SOURCES`.
        spec: a `backbone_spec` dict.
        has_shortcut_conv: `block layer prefix -> bool`, whether that block
            has a 1x1 shortcut conv (else it subsamples or is the identity).
    """
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}. Received: source={source!r}")
    adaface = source == "adaface"
    layout = []
    if adaface:
        stem = ("input_layer.0", "input_layer.1", "input_layer.2")
    else:
        stem = ("conv1", "bn1", "prelu")
    layout += [
        (stem[0], "conv", "stem_conv"),
        (stem[1], "bn", "stem_bn"),
        (stem[2], "prelu", "stem_prelu"),
    ]
    body_index = 0
    for stage, num_blocks in enumerate(spec["stage_blocks"], start=1):
        for block in range(1, num_blocks + 1):
            name = f"stage{stage}_block{block}"
            if adaface:
                residual = f"body.{body_index}.res_layer"
                parts = [
                    (f"{residual}.0", "bn", "bn1"),
                    (f"{residual}.1", "conv", "conv1"),
                    (f"{residual}.2", "bn", "bn2"),
                    (f"{residual}.3", "prelu", "prelu"),
                    (f"{residual}.4", "conv", "conv2"),
                    (f"{residual}.5", "bn", "bn3"),
                ]
                shortcut = (f"body.{body_index}.shortcut_layer.0", f"body.{body_index}.shortcut_layer.1")
            else:
                prefix = f"layer{stage}.{block - 1}"
                parts = [
                    (f"{prefix}.{part}", kind, part)
                    for part, kind in (
                        ("bn1", "bn"), ("conv1", "conv"), ("bn2", "bn"),
                        ("prelu", "prelu"), ("conv2", "conv"), ("bn3", "bn"),
                    )
                ]
                shortcut = (f"{prefix}.downsample.0", f"{prefix}.downsample.1")
            if has_shortcut_conv(name):
                parts += [(shortcut[0], "conv", "shortcut_conv"), (shortcut[1], "bn", "shortcut_bn")]
            layout += [(torch, kind, f"{name}_{suffix}") for torch, kind, suffix in parts]
            body_index += 1
    if adaface:
        layout += [
            ("output_layer.0", "bn", "embedding_bn_features"),
            ("output_layer.3", "dense", "embedding_dense"),
            ("output_layer.4", "bn1d", "embedding_bn"),
        ]
    else:
        layout += [
            ("bn2", "bn", "embedding_bn_features"),
            ("fc", "dense", "embedding_dense"),
            ("features", "bn1d_affine", "embedding_bn"),
        ]
    return layout


def checkpoint_state_dict(checkpoint, source, path="checkpoint"):
    """The backbone's `{torch key: array}` out of a loaded checkpoint.

    AdaFace: a Lightning checkpoint whose `state_dict` holds the backbone
    under `model.` and the training head beside it (`head.`, ignored), or a
    plain backbone state dict. insightface: a plain state dict (a
    `state_dict` entry and a DataParallel `module.` prefix are accepted).

    Returns:
        `(state, ignored)`: the backbone's arrays by key, and the keys left out.
    """
    state = checkpoint
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise WeightImportError(
            f"{path} holds no state dict (expected a dict of tensors, or a Lightning "
            f"checkpoint with `state_dict`). Received: {type(checkpoint).__name__}"
        )
    ignored = []
    if source == "adaface" and any(str(key).startswith("model.") for key in state):
        ignored = sorted(str(key) for key in state if not str(key).startswith("model."))
        state = {key[len("model."):]: value for key, value in state.items() if key.startswith("model.")}
    elif all(str(key).startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    for key, value in state.items():
        if not isinstance(value, (np.ndarray, PendingTensor)):
            raise WeightImportError(
                f"{path}: entry {key!r} of the state dict is a {type(value).__name__}, not a tensor"
            )
    return state, ignored


def _expected_torch_shapes(kind, layer):
    """PyTorch parameter shapes that fit a package layer."""
    if kind == "conv":
        kh, kw, cin, cout = layer.kernel.shape
        return {"weight": (cout, cin, kh, kw)}
    if kind == "dense":
        inputs, outputs = layer.kernel.shape
        return {"weight": (outputs, inputs), "bias": (outputs,)}
    if kind == "prelu":
        return {"weight": (layer.alpha.shape[-1],)}
    channels = (layer.moving_mean.shape[0],)
    return {key: channels for key in KIND_KEYS[kind]}


def _keras_weights(kind, tensors, layer, flatten_shape, reverse_input_channels):
    """The layer's `set_weights` list from its PyTorch tensors (float32)."""
    if kind == "conv":
        kernel = tensors["weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if reverse_input_channels:
            kernel = kernel[:, :, ::-1, :]
        return [kernel]
    if kind == "prelu":
        return [tensors["weight"].reshape(layer.alpha.shape)]
    if kind == "dense":
        height, width, channels = flatten_shape
        outputs = tensors["weight"].shape[0]
        # PyTorch flattens (C, H, W), Keras (H, W, C).
        kernel = tensors["weight"].reshape(outputs, channels, height, width)
        kernel = kernel.transpose(2, 3, 1, 0).reshape(height * width * channels, outputs)
        return [kernel, tensors["bias"]]
    if kind == "bn":
        return [tensors[key] for key in ("weight", "bias", "running_mean", "running_var")]
    if kind == "bn1d":
        return [tensors["running_mean"], tensors["running_var"]]
    # bn1d_affine into an affine-free BN: w (x - m) / sqrt(v + eps) + b equals
    # (x - m') / sqrt(v' + eps) with m' = m - b sqrt(v + eps) / w and
    # v' = (v + eps) / w^2 - eps.
    weight, bias, mean, variance = (
        tensors[key].astype(np.float64) for key in ("weight", "bias", "running_mean", "running_var")
    )
    std = np.sqrt(variance + TORCH_BN_EPSILON)
    return [mean - bias * std / weight, (std / weight) ** 2 - TORCH_BN_EPSILON]


def check_state_shapes(model, state, source, path="checkpoint", arch=None):
    """Checks a state dict's keys and shapes against an `IResNetEmbedder`, reading nothing.

    `state` values need only a `shape` (arrays or a checkpoint's `PendingTensor`s), so a
    checkpoint is bounded by the architecture before any tensor is read.

    Returns:
        `(layout, expected)`: `torch_layout`'s list and `{torch key: expected shape}`.

    Raises:
        WeightImportError: an unknown key, a missing key or a shape mismatch,
            naming the key and both shapes.
    """
    layer_names = {layer.name for layer in model.layers}
    layout = torch_layout(
        source, model.backbone_spec, lambda block: f"{block}_shortcut_conv" in layer_names
    )
    what = f"an {source} {arch or 'iResNet'}"
    hint = " Check --from and --arch." if arch else ""
    expected = {}
    for prefix, kind, name in layout:
        for key, shape in _expected_torch_shapes(kind, model.get_layer(name)).items():
            expected[f"{prefix}.{key}"] = shape
    modules = {prefix for prefix, _, _ in layout}
    unknown = sorted(
        key
        for key in state
        if key not in expected
        and not (key.endswith(f".{IGNORED_SUFFIX}") and key.rsplit(".", 1)[0] in modules)
    )
    if unknown:
        listed = ", ".join(f"{key!r} {tuple(state[key].shape)}" for key in unknown[:5])
        raise WeightImportError(
            f"{path}: {len(unknown)} key(s) of the checkpoint have no place in {what}: "
            f"{listed}{' ...' if len(unknown) > 5 else ''}.{hint}"
        )
    missing = [key for key in expected if key not in state]
    if missing:
        listed = ", ".join(f"{key!r} {expected[key]}" for key in missing[:5])
        raise WeightImportError(
            f"{path}: {len(missing)} key(s) of {what} are missing from the checkpoint "
            f"(key and the shape the model expects): {listed}{' ...' if len(missing) > 5 else ''}."
            f"{hint}"
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            raise WeightImportError(
                f"{path}: {key!r} has shape {tuple(state[key].shape)} in the checkpoint but "
                f"{what} expects {tuple(shape)}.{hint}"
            )
    return layout, expected


def load_torch_state_dict(model, state, source, path="checkpoint", arch=None):
    """Sets an `IResNetEmbedder`'s weights from a PyTorch state dict.

    Args:
        model: an `IResNetEmbedder` whose structure matches the checkpoint.
        state: `{torch key: array}` (see `checkpoint_state_dict`).
        source: one of `SOURCES`.
        path, arch: named in error messages.

    Raises:
        WeightImportError: as `check_state_shapes`, or an insightface `features`
            BN weight that is not positive.
    """
    layout, _ = check_state_shapes(model, state, source, path, arch)
    flatten_shape = tuple(model.get_layer("embedding_flatten").input.shape[1:])
    reverse = SOURCE_CHANNEL_ORDER[source] == "bgr"
    for prefix, kind, name in layout:
        layer = model.get_layer(name)
        tensors = {
            key: np.asarray(state[f"{prefix}.{key}"], np.float32) for key in KIND_KEYS[kind]
        }
        if kind == "bn1d_affine" and not np.all(tensors["weight"] > 0):
            raise WeightImportError(
                f"{path}: {prefix}.weight must be positive to fold into the embedding BN "
                "(insightface freezes it at 1)"
            )
        weights = _keras_weights(kind, tensors, layer, flatten_shape, reverse and name == "stem_conv")
        layer.set_weights([np.asarray(w, np.float32) for w in weights])


def import_iresnet(checkpoint_path, source, arch):
    """Builds an `IResNetEmbedder` holding a published checkpoint's weights.

    Args:
        checkpoint_path: AdaFace `.ckpt` or insightface `backbone.pth`.
        source: `"adaface"` or `"insightface"`.
        arch: one of `ARCHS` (`ir_100` and `ir_101` are the same network).

    Returns:
        `(model, info)`: the model (RGB in [0, 255] -> `{"embedding"}`) and a
        dict with `source`, `arch`, `image_size`, `embedding_dim`,
        `channel_order` (of the source), `tensors` (imported) and `ignored`
        (checkpoint keys left out, e.g. AdaFace's training head).
    """
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}. Received: source={source!r}")
    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {ARCHS}. Received: arch={arch!r}")
    # The checkpoint's tensors are read only once the architecture has bounded them: their
    # keys and shapes are checked first, and a storage larger than its tensors is refused.
    with TorchCheckpoint(checkpoint_path) as checkpoint:
        pending, ignored = checkpoint_state_dict(checkpoint.content, source, checkpoint_path)
        preset = IRESNET_PRESETS[arch]
        spec = backbone_spec({**preset, "shortcut": SOURCE_SHORTCUT[source]})
        image_size, embedding_dim = _head_geometry(pending, source, spec, checkpoint_path)
        model = IResNetEmbedder(
            spec,
            image_size=image_size,
            embedding_dim=embedding_dim,
            dropout=SOURCE_DROPOUT[source],
            name=f"{source}_{arch}",
        )
        _, expected = check_state_shapes(model, pending, source, checkpoint_path, arch)
        state = dict(zip(expected, checkpoint.read_tensors([pending[key] for key in expected])))
    load_torch_state_dict(model, state, source, checkpoint_path, arch)
    info = {
        "source": source,
        "arch": arch,
        "image_size": image_size,
        "embedding_dim": embedding_dim,
        "channel_order": SOURCE_CHANNEL_ORDER[source],
        "tensors": len(pending),
        "ignored": ignored,
    }
    return model, info


def _head_geometry(state, source, spec, path):
    """`(image_size, embedding_dim)` from the dense layer's shape (7x7 maps: 112 px)."""
    key = "output_layer.3.weight" if source == "adaface" else "fc.weight"
    weight = state.get(key)
    if weight is None or weight.ndim != 2:
        raise WeightImportError(
            f"{path}: no dense layer {key!r} (2-D) in the checkpoint; is it an {source} iResNet? "
            f"Keys start with: {sorted(state)[:5]}"
        )
    width = spec["stage_widths"][-1]
    area = weight.shape[1] // width
    side = math.isqrt(area)
    if side < 1 or side * side * width != weight.shape[1]:
        raise WeightImportError(
            f"{path}: {key!r} has shape {tuple(weight.shape)}; its inputs are not {width} "
            "channels of a square map"
        )
    if side > MAX_FEATURE_MAP_SIDE or not 1 <= weight.shape[0] <= MAX_EMBEDDING_DIM:
        raise WeightImportError(
            f"{path}: {key!r} has shape {tuple(weight.shape)}: a {side}x{side} feature map "
            f"(at most {MAX_FEATURE_MAP_SIDE}) into {weight.shape[0]} dimensions (at most "
            f"{MAX_EMBEDDING_DIM}); not a face-recognition iResNet head. Refused."
        )
    return side * 2**NUM_STAGES, int(weight.shape[0])


def import_weights(checkpoint, source, arch, out, overwrite=False):
    """Imports a checkpoint (see `import_iresnet`) and saves the model to `out`.

    The file is written beside `out`, flushed to disk and renamed into place,
    so that `out` is either the old file or the complete new one.

    Returns:
        The `info` dict of `import_iresnet`.

    Raises:
        FileExistsError: `out` exists and `overwrite` is False.
    """
    out = pathlib.Path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a directory; `out` must name the .keras file to write")
    require_directory_path(out.parent, "the folder of `out`")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    model, info = import_iresnet(checkpoint, source, arch)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomically(model, out)
    return info
