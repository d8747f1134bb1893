"""The iResNet family of insightface / AdaFace ("IR-18" ... "IR-101").

An iResNet is a stem (3x3 conv, BN, PReLU) followed by four stages of
improved residual blocks; the first block of each stage halves the spatial
size, so a 112x112 face becomes a 7x7 map. The networks take RGB pixels in
[0, 255] and normalise them inside the graph as (x / 255 - 0.5) / 0.5, the
insightface convention, so a saved or exported model needs no outside
preprocessing. (AdaFace's published models take BGR; importing one reverses
its first convolution's input channels instead, see `catface_keras.weights`.)

Two details follow the published PyTorch models so that their weights can be
imported (`catface import-weights`) and behave alike here:

- `stride2_padding`: the stride-2 3x3 convolutions pad one pixel on every
  side, as PyTorch's `padding=1` (explicit `ZeroPadding2D` + "valid"). Keras'
  `padding="same"` pads (0, 1) at stride 2 and samples other pixels; models
  saved before this option existed used it, and load with it ("same").
- `shortcut`: the shortcut of a strided block whose width does not change
  (stage 1's first block) is AdaFace's `MaxPool2d(1, 2)` subsampling
  ("subsample") or insightface's 1x1 conv + BN ("conv").

The building pieces (`iresnet_stem`, `iresnet_stage`) are functions over
symbolic tensors so that the multi-branch model can share the first stages
and give each branch its own copy of the last ones.
"""

from collections.abc import Mapping

import keras

from catface_keras.layers.batch_norm import batch_norm
from catface_keras.layers.cbam import CBAM
from catface_keras.layers.prelu import PReLU

# Blocks per stage, as in AdaFace's `get_blocks` and insightface's iresnet.py.
# AdaFace calls its 100-layer network "IR-101"; both names are offered.
IRESNET_PRESETS = {
    "ir_18": {"stage_blocks": (2, 2, 2, 2), "stage_widths": (64, 128, 256, 512)},
    "ir_34": {"stage_blocks": (3, 4, 6, 3), "stage_widths": (64, 128, 256, 512)},
    "ir_50": {"stage_blocks": (3, 4, 14, 3), "stage_widths": (64, 128, 256, 512)},
    "ir_100": {"stage_blocks": (3, 13, 30, 3), "stage_widths": (64, 128, 256, 512)},
    "ir_101": {"stage_blocks": (3, 13, 30, 3), "stage_widths": (64, 128, 256, 512)},
    # A narrow variant for tests and the CPU demo.
    "ir_tiny": {"stage_blocks": (1, 1, 1, 1), "stage_widths": (16, 32, 48, 64)},
}

NUM_STAGES = 4
DOWNSAMPLING = 2**NUM_STAGES
SHORTCUTS = ("subsample", "conv")
STRIDE2_PADDINGS = ("symmetric", "same")
# What a backbone dict may hold beyond the blocks and widths, with defaults.
BLOCK_OPTIONS = {"shortcut": "subsample", "stride2_padding": "symmetric"}
# The padding of models saved before `stride2_padding` existed.
LEGACY_STRIDE2_PADDING = "same"


def backbone_spec(backbone):
    """The full description of an iResNet as a dict of plain values.

    Args:
        backbone: a key of `IRESNET_PRESETS`, or a dict with `stage_blocks`
            and `stage_widths` (each a sequence of four positive ints) and
            optionally `shortcut` (one of `SHORTCUTS`, default "subsample")
            and `stride2_padding` (one of `STRIDE2_PADDINGS`, default
            "symmetric").

    Returns:
        dict with `stage_blocks` and `stage_widths` (lists of four ints),
        `shortcut` and `stride2_padding`.
    """
    if isinstance(backbone, str):
        name = backbone.lower().replace("-", "_")
        if name not in IRESNET_PRESETS:
            raise ValueError(
                f"Unknown iResNet preset. Expected one of "
                f"{sorted(IRESNET_PRESETS)}. Received: backbone={backbone!r}"
            )
        backbone = IRESNET_PRESETS[name]
    elif not isinstance(backbone, Mapping):
        raise ValueError(
            "`backbone` must be a preset name or a dict with `stage_blocks` "
            f"and `stage_widths`. Received: backbone={backbone!r}"
        )
    unknown = sorted(set(backbone) - {"stage_blocks", "stage_widths", *BLOCK_OPTIONS})
    if unknown:
        raise ValueError(
            f"Unknown keys {unknown} in `backbone`. Expected `stage_blocks`, `stage_widths` "
            f"and optionally {sorted(BLOCK_OPTIONS)}. Received: backbone={dict(backbone)!r}"
        )
    spec = {}
    for name in ("stage_blocks", "stage_widths"):
        values = tuple(backbone.get(name, ()))
        if len(values) != NUM_STAGES or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ValueError(
                f"`{name}` must hold {NUM_STAGES} positive ints. Received: {name}={values!r}"
            )
        spec[name] = list(values)
    for name, choices in (("shortcut", SHORTCUTS), ("stride2_padding", STRIDE2_PADDINGS)):
        spec[name] = backbone.get(name, BLOCK_OPTIONS[name])
        if spec[name] not in choices:
            raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={spec[name]!r}")
    return spec


def resolve_backbone(backbone):
    """Returns `(stage_blocks, stage_widths)` for a preset name or a dict (see `backbone_spec`)."""
    spec = backbone_spec(backbone)
    return tuple(spec["stage_blocks"]), tuple(spec["stage_widths"])


def block_options(spec):
    """The `iresnet_stage` keyword arguments of a `backbone_spec` dict."""
    return {name: spec[name] for name in BLOCK_OPTIONS}


def saved_backbone_spec(backbone):
    """`backbone` as read from a saved model's config, for `from_config`.

    Saved configs hold a dict; one without `stride2_padding` comes from a
    model saved before the option existed, trained with Keras' "same"
    padding, and keeps it so that it computes exactly as it was trained.
    """
    if isinstance(backbone, Mapping) and "stride2_padding" not in backbone:
        return {**backbone, "stride2_padding": LEGACY_STRIDE2_PADDING}
    return backbone


def validate_image_size(image_size):
    if not isinstance(image_size, int) or image_size < DOWNSAMPLING or image_size % DOWNSAMPLING:
        raise ValueError(
            f"`image_size` must be a positive multiple of {DOWNSAMPLING} (the "
            f"backbone halves the size four times). Received: image_size={image_size!r}"
        )


def _conv3x3(x, filters, strides, name, stride2_padding="symmetric"):
    """3x3 conv, no bias; PyTorch's padding=1 unless stride 2 with "same"."""
    padding = "same"
    if strides > 1 and stride2_padding == "symmetric":
        # Keras' "same" pads (0, 1) at stride 2; PyTorch pads (1, 1).
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def _prelu(name):
    # One slope per channel, initialised at 0.25 as torch.nn.PReLU.
    return PReLU(
        alpha_initializer=keras.initializers.Constant(0.25),
        shared_axes=[1, 2],
        name=name,
    )


def pixel_normalization(images, name="pixel_normalization"):
    """Maps RGB pixels in [0, 255] to [-1, 1]: (x / 255 - 0.5) / 0.5."""
    return keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name=name)(images)


def iresnet_stem(x, filters, name="stem", synchronized=False):
    """(batch, H, W, 3) -> (batch, H, W, filters): conv3x3, BN, PReLU."""
    x = _conv3x3(x, filters, 1, f"{name}_conv")
    x = batch_norm(f"{name}_bn", synchronized)(x)
    return _prelu(f"{name}_prelu")(x)


def iresnet_block(
    x,
    filters,
    strides,
    name,
    synchronized=False,
    shortcut="subsample",
    stride2_padding="symmetric",
    block_attention=None,
    attention_maps=None,
):
    """One improved residual block (BN-conv-BN-PReLU-conv-BN plus shortcut).

    (batch, H, W, C) -> (batch, H / strides, W / strides, filters).
    `shortcut` and `stride2_padding` as in `backbone_spec`.
    `block_attention="cbam"` applies CBAM to the residual branch before the
    addition (the CBAM-iResNet of A-SKD); its pre-sigmoid channel and
    spatial maps are appended to the list `attention_maps` when given.
    """
    in_channels = x.shape[-1]
    residual = batch_norm(f"{name}_bn1", synchronized)(x)
    residual = _conv3x3(residual, filters, 1, f"{name}_conv1")
    residual = batch_norm(f"{name}_bn2", synchronized)(residual)
    residual = _prelu(f"{name}_prelu")(residual)
    residual = _conv3x3(residual, filters, strides, f"{name}_conv2", stride2_padding)
    residual = batch_norm(f"{name}_bn3", synchronized)(residual)
    if block_attention is not None:
        residual = _block_attention(residual, block_attention, name, attention_maps)
    if in_channels == filters and (strides == 1 or shortcut == "subsample"):
        # AdaFace's MaxPool2d(1, stride): plain subsampling.
        shortcut = (
            keras.layers.MaxPooling2D(1, strides, name=f"{name}_subsample")(x)
            if strides > 1
            else x
        )
    else:
        shortcut = keras.layers.Conv2D(
            filters,
            1,
            strides=strides,
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{name}_shortcut_conv",
        )(x)
        shortcut = batch_norm(f"{name}_shortcut_bn", synchronized)(shortcut)
    return keras.layers.Add(name=f"{name}_add")([shortcut, residual])


def iresnet_stage(
    x,
    filters,
    num_blocks,
    name,
    synchronized=False,
    shortcut="subsample",
    stride2_padding="symmetric",
    block_attention=None,
    attention_maps=None,
):
    """A stage: a stride-2 block then `num_blocks - 1` stride-1 blocks.

    (batch, H, W, C) -> (batch, H / 2, W / 2, filters). `block_attention`
    and `attention_maps` as in `iresnet_block`.
    """
    for index in range(num_blocks):
        x = iresnet_block(
            x,
            filters,
            2 if index == 0 else 1,
            f"{name}_block{index + 1}",
            synchronized,
            shortcut=shortcut,
            stride2_padding=stride2_padding,
            block_attention=block_attention,
            attention_maps=attention_maps,
        )
    return x


BLOCK_ATTENTIONS = (None, "cbam")


def _block_attention(x, kind, name, attention_maps):
    if kind != "cbam":
        raise ValueError(
            f"`block_attention` must be one of {BLOCK_ATTENTIONS}. Received: block_attention={kind!r}"
        )
    x, channel_logits, spatial_logits = CBAM(name=f"{name}_cbam")(x)
    if attention_maps is not None:
        attention_maps.extend([channel_logits, spatial_logits])
    return x


def iresnet_trunk(images, spec, synchronized=False):
    """Pixel normalisation, stem and the four stages of a `backbone_spec` dict.

    `(batch, S, S, 3)` RGB in [0, 255] -> `(batch, S / 16, S / 16, stage_widths[-1])`.
    """
    x = pixel_normalization(images)
    x = iresnet_stem(x, spec["stage_widths"][0], synchronized=synchronized)
    for index, (blocks, width) in enumerate(zip(spec["stage_blocks"], spec["stage_widths"])):
        x = iresnet_stage(
            x, width, blocks, f"stage{index + 1}", synchronized, **block_options(spec)
        )
    return x


def embedding_head(
    features, embedding_dim, dropout, name="embedding", synchronized=False, created=None
):
    """The iResNet output layer: BN, dropout, flatten, dense, BN (no affine).

    `(batch, H, W, C)` -> `(batch, embedding_dim)`, float32, not normalised:
    its norm is AdaFace's quality proxy. AdaFace's `output_layer` and
    insightface's `bn2 ... features` (whose BN affine is folded into its
    statistics on import). The multi-branch model's FR head and the fused
    head of stage 2 are this head too, so imported weights load into any of
    them. The layers are appended to the list `created` when one is given.
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
    return stack_layers(layers, features, created)


def stack_layers(layers, x, created=None):
    """`x` through `layers` in order; the layers are appended to the list `created` when one
    is given (so that a model can keep its heads' layers)."""
    if created is not None:
        created.extend(layers)
    for layer in layers:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable(package="catface")
class IResNetBackbone(keras.Model):
    """iResNet feature extractor: RGB pixels -> final conv feature map.

    `(batch, image_size, image_size, 3)` in [0, 255] ->
    `(batch, image_size / 16, image_size / 16, stage_widths[-1])`.

    Args:
        backbone: preset name (`"ir_18"`, `"ir_34"`, `"ir_50"`, `"ir_100"`,
            `"ir_101"`, `"ir_tiny"`) or a dict (see `backbone_spec`).
        image_size: input side, any positive multiple of 16 (default 112).
        synchronized_batch_norm: batch moments over all replicas (see `batch_norm`).

    Example:
        >>> features = IResNetBackbone("ir_tiny", image_size=32)(images)
    """

    def __init__(self, backbone="ir_50", image_size=112, synchronized_batch_norm=False, **kwargs):
        spec = backbone_spec(backbone)
        validate_image_size(image_size)
        images = keras.Input((image_size, image_size, 3), name="images")
        features = iresnet_trunk(images, spec, synchronized_batch_norm)
        super().__init__(inputs=images, outputs=features, **kwargs)
        self.backbone_spec = spec
        self.stage_blocks = tuple(spec["stage_blocks"])
        self.stage_widths = tuple(spec["stage_widths"])
        self.image_size = image_size
        self.synchronized_batch_norm = synchronized_batch_norm

    def get_config(self):
        return {
            "backbone": dict(self.backbone_spec),
            "image_size": self.image_size,
            "synchronized_batch_norm": self.synchronized_batch_norm,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "backbone": saved_backbone_spec(config["backbone"])})


@keras.saving.register_keras_serializable(package="catface")
class IResNetEmbedder(keras.Model):
    """iResNet with its output layer: a face recognition network.

    Called on `(batch, image_size, image_size, 3)` RGB in [0, 255], returns
    `{"embedding": (batch, embedding_dim)}`, not normalised (its norm is
    AdaFace's quality proxy; compare faces by cosine similarity), like the
    multi-branch model's FR output. `catface import-weights` writes one from
    a published AdaFace or insightface checkpoint; `model.init` starts
    stage-1 training from it.

    Args:
        backbone: preset name or dict (see `backbone_spec`).
        image_size: input side, a multiple of 16 (the published models: 112).
        embedding_dim: embedding size (512).
        dropout: dropout before the dense layer while training (AdaFace 0.4,
            insightface 0).
        synchronized_batch_norm: batch moments over all replicas.
    """

    def __init__(
        self,
        backbone="ir_50",
        image_size=112,
        embedding_dim=512,
        dropout=0.4,
        synchronized_batch_norm=False,
        **kwargs,
    ):
        trunk = IResNetBackbone(backbone, image_size, synchronized_batch_norm)
        # The head continues the backbone's own graph (rather than calling the
        # backbone as one nested layer), so that the weights keep the flat
        # names that published checkpoints are imported to and older files use.
        embedding = embedding_head(
            trunk.output, embedding_dim, dropout, synchronized=synchronized_batch_norm
        )
        super().__init__(inputs=trunk.input, outputs={"embedding": embedding}, **kwargs)
        self.backbone = trunk
        self.backbone_spec = trunk.backbone_spec
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.synchronized_batch_norm = synchronized_batch_norm

    def get_config(self):
        return {
            "backbone": dict(self.backbone_spec),
            "image_size": self.image_size,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "synchronized_batch_norm": self.synchronized_batch_norm,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "backbone": saved_backbone_spec(config["backbone"])})
