"""Gradient maps with tf-keras-vis: Grad-CAM, Grad-CAM++ and Saliency, per score.

Scores (tf-keras-vis wants one model output per score function, so each is computed on a
single-output view of the model's graph, see `views.tap_layers`):

- attribute j: its logit. The output is already linear, so tf-keras-vis's
  `ReplaceToLinear` `model_modifier` is not needed; with no modifier the model is not cloned.
- face embedding: cosine similarity to a reference embedding r. On the reference image
  itself the cosine is 1, a maximum, and its gradient vanishes; there the score is the
  projection e . r/|r|, which equals the embedding norm (AdaFace's quality proxy) at that
  point, so its map shows what drives the norm.

Grad-CAM and Grad-CAM++ look at a branch's last conv block output (`sb_stage4_block2_add`
for attributes, `fr_...` for the embedding: the conv map F under the branch self-attention),
passed by name with `seek_penultimate_conv_layer=False`. Left to seek, tf-keras-vis walks
back through `model.layers` to the nearest `Conv` layer in list order, which in a two-branch
graph can belong to the other branch. Saliency is |d score / d pixel|, max over channels.

Every map is `(batch, H, W)` (the input's size) with values in [0, 1]: tf-keras-vis
upsamples the CAMs (linear) and min-max normalises each map; `unit_maps` enforces both.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.saliency import Saliency

from catface_keras.visualization.views import TAP_SUFFIX, iresnet_block_layers, tap_layers

GRADIENT_METHODS = ("Grad-CAM", "Grad-CAM++", "Saliency")


def unit_maps(maps, size):
    """`(batch, h, w)` -> float32 `(batch, *size)` in [0, 1] (bilinear resize if needed)."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32))
    if maps.ndim != 3:
        raise ValueError(f"`maps` must be (batch, height, width). Received: shape={maps.shape}")
    if maps.shape[1:3] != tuple(size):
        maps = tf.image.resize(maps[..., None], size, method="bilinear").numpy()[..., 0]
    return np.clip(maps, 0.0, 1.0)


def gradient_maps(view, score, images, tap_layer):
    """The three maps of one score.

    Args:
        view: single-output `keras.Model` (images -> the output `score` reads).
        score: tf-keras-vis score function, `(batch, ...)` output -> `(batch,)`.
        images: float32 `(batch, H, W, 3)`, RGB in [0, 255].
        tap_layer: name of the layer in `view` whose output Grad-CAM weighs.

    Returns:
        `{method: (batch, H, W) float32 in [0, 1]}` for each of `GRADIENT_METHODS`.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    cam_options = dict(penultimate_layer=tap_layer, seek_penultimate_conv_layer=False)
    with warnings.catch_warnings():
        # tf-keras-vis passes a single input as a one-element list; Keras accepts it but warns.
        warnings.filterwarnings("ignore", "The structure of `inputs`", UserWarning)
        maps = {
            "Grad-CAM": Gradcam(view, clone=False)(score, images, **cam_options),
            "Grad-CAM++": GradcamPlusPlus(view, clone=False)(score, images, **cam_options),
            "Saliency": Saliency(view, clone=False)(score, images),
        }
    size = tuple(images.shape[1:3])
    return {method: unit_maps(maps[method], size) for method in GRADIENT_METHODS}


def attribute_score(index):
    """Score of attribute `index`: its logit, `(batch, A)` -> `(batch,)`."""

    def score(logits):
        return logits[:, index]

    return score


def similarity_score(reference_embedding, is_reference):
    """Cosine similarity to `reference_embedding` `(D,)`, `(batch, D)` -> `(batch,)`.

    Where `is_reference` `(batch,)` is True: the projection on the reference direction
    instead (see the module docstring).
    """
    direction = tf.math.l2_normalize(tf.constant(reference_embedding, tf.float32), axis=-1)
    is_reference = tf.constant(is_reference, tf.bool)

    def score(embedding):
        projection = tf.reduce_sum(embedding * direction, axis=-1)
        cosine = projection / tf.maximum(tf.norm(embedding, axis=-1), 1e-12)
        return tf.where(is_reference, projection, cosine)

    return score


def attribute_gradient_maps(model, images, layer_name=None):
    """Maps of every attribute logit.

    Args:
        model: a CATFace model (`{"embedding", "attribute_logits"}` outputs).
        images: float32 `(batch, S, S, 3)`, RGB in [0, 255].
        layer_name: Grad-CAM layer (default: the SB branch's last block output).

    Returns:
        `(maps, logits)`: `{attribute: {method: (batch, S, S)}}` and `(batch, A)` logits.
    """
    layer_name = layer_name or iresnet_block_layers(model)["sb_last"]
    graph = tap_layers(model, [layer_name])
    view = keras.Model(graph.inputs, graph.outputs["attribute_logits"], name="attribute_view")
    logits = view(images, training=False).numpy()
    maps = {
        name: gradient_maps(view, attribute_score(index), images, layer_name + TAP_SUFFIX)
        for index, name in enumerate(model.attribute_names)
    }
    return maps, logits


def embedding_gradient_maps(model, images, reference_embedding, is_reference, layer_name=None):
    """Maps of the embedding's similarity to a reference.

    Args:
        model: a CATFace model.
        images: float32 `(batch, S, S, 3)`, RGB in [0, 255].
        reference_embedding: `(D,)`, the reference face's embedding.
        is_reference: `(batch,)` bools, True for the reference image itself.
        layer_name: Grad-CAM layer (default: the FR branch's last block output).

    Returns:
        `(maps, scores)`: `{method: (batch, S, S)}` and the `(batch,)` score values.
    """
    layer_name = layer_name or iresnet_block_layers(model)["fr_last"]
    graph = tap_layers(model, [layer_name])
    view = keras.Model(graph.inputs, graph.outputs["embedding"], name="embedding_view")
    score = similarity_score(reference_embedding, is_reference)
    scores = score(view(images, training=False)).numpy()
    return gradient_maps(view, score, images, layer_name + TAP_SUFFIX), scores
