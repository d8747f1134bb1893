"""Activation-based attention maps (Zagoruyko & Komodakis), as the paper's figures draw them
(docs/PAPER.md section 8).

The attention map of a conv activation F `(H, W, C)` is the sum over channels of its squared
values, sum_c F[..., c]^2 `(H, W)`, min-max normalised to [0, 1] per image (a constant map
becomes 0). The paper draws it for the first and the last conv blocks, on an HQ face and its
degraded LQ copy.
"""

import keras
import numpy as np
import tensorflow as tf

from catface_keras.visualization.views import iresnet_block_layers, tap_layers

ATTENTION_BLOCKS = ("first", "fr_last", "sb_last")


def activation_attention(features):
    """`(batch, H, W, C)` activations -> `(batch, H, W)` float32 maps in [0, 1]."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 4:
        raise ValueError(
            f"`features` must be (batch, height, width, channels). Received: "
            f"shape={features.shape}"
        )
    energy = np.sum(np.square(features), axis=-1)
    low = energy.min(axis=(1, 2), keepdims=True)
    span = energy.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (energy - low) / np.where(span > 0, span, 1.0), 0.0).astype(
        np.float32
    )


def upsample_maps(maps, size):
    """`(batch, h, w)` maps in [0, 1] -> `(batch, *size)`, bilinear, still in [0, 1]."""
    maps = np.asarray(maps, dtype=np.float32)
    resized = tf.image.resize(maps[..., None], size, method="bilinear").numpy()[..., 0]
    return np.clip(resized, 0.0, 1.0)


def attention_maps(model, images, layer_names=None):
    """Attention maps of the given block outputs, at the input's size.

    Args:
        model: a CATFace model (iResNet blocks named as in `backbones/iresnet.py`).
        images: float32 `(batch, S, S, 3)`, RGB in [0, 255].
        layer_names: `{label: layer name}`; default `iresnet_block_layers(model)`: the first
            stage's output and each branch's last block output.

    Returns:
        `{label: (batch, S, S) float32 in [0, 1]}`.
    """
    layer_names = dict(layer_names or iresnet_block_layers(model))
    graph = tap_layers(model, layer_names.values())
    view = keras.Model(
        graph.inputs, {label: graph.taps[name] for label, name in layer_names.items()},
        name="activation_view",
    )
    images = tf.convert_to_tensor(images, tf.float32)
    activations = view(images, training=False)
    size = tuple(images.shape[1:3])
    return {
        label: upsample_maps(activation_attention(activations[label]), size)
        for label in layer_names
    }
