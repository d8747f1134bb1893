"""The iResNet family of insightface / AdaFace ("IR-18" ... "IR-101").

An iResNet is a stem (3x3 conv, BN, PReLU) followed by four stages of
improved residual blocks; the first block of each stage halves the spatial
size, so a 112x112 face becomes a 7x7 map. The networks take RGB pixels in
[0, 255] and normalise them inside the graph as (x / 255 - 0.5) / 0.5, the
insightface convention, so a saved or exported model needs no outside
preprocessing.

The building pieces (`iresnet_stem`, `iresnet_stage`) are functions over
symbolic tensors so that the multi-branch model can share the first stages
and give each branch its own copy of the last ones.
"""

from collections.abc import Mapping

import keras

from catface_keras.layers.batch_norm import batch_norm
from catface_keras.layers.cbam import CBAM

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


def resolve_backbone(backbone):
    """Returns `(stage_blocks, stage_widths)` for a preset name or a dict.

    Args:
        backbone: a key of `IRESNET_PRESETS`, or a dict with `stage_blocks`
            and `stage_widths`, each a sequence of four positive ints.
    """
    if isinstance(backbone, str):
        backbone = backbone.lower().replace("-", "_")
        if backbone not in IRESNET_PRESETS:
            raise ValueError(
                f"Unknown iResNet preset. Expected one of "
                f"{sorted(IRESNET_PRESETS)}. Received: backbone={backbone!r}"
            )
        spec = IRESNET_PRESETS[backbone]
    elif isinstance(backbone, Mapping):
        spec = backbone
    else:
        raise ValueError(
            "`backbone` must be a preset name or a dict with `stage_blocks` "
            f"and `stage_widths`. Received: backbone={backbone!r}"
        )
    stage_blocks = tuple(spec.get("stage_blocks", ()))
    stage_widths = tuple(spec.get("stage_widths", ()))
    for name, values in (("stage_blocks", stage_blocks), ("stage_widths", stage_widths)):
        if len(values) != NUM_STAGES or not all(
            isinstance(v, int) and v > 0 for v in values
        ):
            raise ValueError(
                f"`{name}` must hold {NUM_STAGES} positive ints. "
                f"Received: {name}={values!r}"
            )
    return stage_blocks, stage_widths


def validate_image_size(image_size):
    if not isinstance(image_size, int) or image_size < DOWNSAMPLING or image_size % DOWNSAMPLING:
        raise ValueError(
            f"`image_size` must be a positive multiple of {DOWNSAMPLING} (the "
            f"backbone halves the size four times). Received: image_size={image_size!r}"
        )


def _conv3x3(filters, strides, name):
    return keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _prelu(name):
    # One slope per channel, initialised at 0.25 as torch.nn.PReLU.
    return keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(0.25),
        shared_axes=[1, 2],
        name=name,
    )


def pixel_normalization(images, name="pixel_normalization"):
    """Maps RGB pixels in [0, 255] to [-1, 1]: (x / 255 - 0.5) / 0.5."""
    return keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name=name)(images)


def iresnet_stem(x, filters, name="stem", synchronized=False):
    """(batch, H, W, 3) -> (batch, H, W, filters): conv3x3, BN, PReLU."""
    x = _conv3x3(filters, 1, f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn", synchronized)(x)
    return _prelu(f"{name}_prelu")(x)


def iresnet_block(
    x, filters, strides, name, synchronized=False, block_attention=None, attention_maps=None
):
    """One improved residual block (BN-conv-BN-PReLU-conv-BN plus shortcut).

    (batch, H, W, C) -> (batch, H / strides, W / strides, filters).
    `block_attention="cbam"` applies CBAM to the residual branch before the
    addition (the CBAM-iResNet of A-SKD); its pre-sigmoid channel and
    spatial maps are appended to the list `attention_maps` when given.
    """
    in_channels = x.shape[-1]
    residual = batch_norm(f"{name}_bn1", synchronized)(x)
    residual = _conv3x3(filters, 1, f"{name}_conv1")(residual)
    residual = batch_norm(f"{name}_bn2", synchronized)(residual)
    residual = _prelu(f"{name}_prelu")(residual)
    residual = _conv3x3(filters, strides, f"{name}_conv2")(residual)
    residual = batch_norm(f"{name}_bn3", synchronized)(residual)
    if block_attention is not None:
        residual = _block_attention(residual, block_attention, name, attention_maps)
    if in_channels == filters:
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
    x, filters, num_blocks, name, synchronized=False, block_attention=None, attention_maps=None
):
    """A stage: a stride-2 block then `num_blocks - 1` stride-1 blocks.

    (batch, H, W, C) -> (batch, H / 2, W / 2, filters). `block_attention`
    and `attention_maps` as in `iresnet_block`.
    """
    for index in range(num_blocks):
        x = iresnet_block(
            x, filters, 2 if index == 0 else 1, f"{name}_block{index + 1}", synchronized,
            block_attention, attention_maps,
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


@keras.saving.register_keras_serializable(package="catface")
class IResNetBackbone(keras.Model):
    """iResNet feature extractor: RGB pixels -> final conv feature map.

    `(batch, image_size, image_size, 3)` in [0, 255] ->
    `(batch, image_size / 16, image_size / 16, stage_widths[-1])`.

    Args:
        backbone: preset name (`"ir_18"`, `"ir_34"`, `"ir_50"`, `"ir_100"`,
            `"ir_101"`, `"ir_tiny"`) or a dict with `stage_blocks` and
            `stage_widths`.
        image_size: input side, any positive multiple of 16 (default 112).
        synchronized_batch_norm: batch moments over all replicas (see `batch_norm`).

    Example:
        >>> features = IResNetBackbone("ir_tiny", image_size=32)(images)
    """

    def __init__(self, backbone="ir_50", image_size=112, synchronized_batch_norm=False, **kwargs):
        stage_blocks, stage_widths = resolve_backbone(backbone)
        validate_image_size(image_size)
        images = keras.Input((image_size, image_size, 3), name="images")
        x = pixel_normalization(images)
        x = iresnet_stem(x, stage_widths[0], synchronized=synchronized_batch_norm)
        for index, (blocks, width) in enumerate(zip(stage_blocks, stage_widths)):
            x = iresnet_stage(x, width, blocks, f"stage{index + 1}", synchronized_batch_norm)
        super().__init__(inputs=images, outputs=x, **kwargs)
        self.stage_blocks = stage_blocks
        self.stage_widths = stage_widths
        self.image_size = image_size
        self.synchronized_batch_norm = synchronized_batch_norm

    def get_config(self):
        return {
            "backbone": {
                "stage_blocks": list(self.stage_blocks),
                "stage_widths": list(self.stage_widths),
            },
            "image_size": self.image_size,
            "synchronized_batch_norm": self.synchronized_batch_norm,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
