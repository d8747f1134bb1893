"""The serving computation as a plain float32 TensorFlow function, for ONNX and LiteRT.

`serving_default` (see `serving.py`) takes uint8 faces and checks their shape with graph
ops (`tf.cond`, `Assert`, `PlaceholderWithDefault`) and resizes them with an antialiased
`tf.image.resize` (`ScaleAndTranslate`); none of these exists in ONNX or in LiteRT's
built-in ops. `portable_function(model)` computes the same outputs from ops both formats
have:

- input `images`: float32 `(batch, 112, 112, 3)`, RGB in [0, 255] (uint8 faces are exact in
  float32; the runners in `onnx.py` and `litert.py` cast them);
- the resize to the model's `image_size` is the same antialiased bilinear filter, written as
  two constant matrix products (the filter is linear and separable, and the sizes are fixed);
- outputs as `serving_default`'s: `embedding` `(batch, D)` L2-normalised, `embedding_norm`
  `(batch,)` and one `(batch,)` attribute probability per name. An imported backbone
  (`IResNetEmbedder`, written by `catface import-weights`) has no attribute outputs.

The runtime checks its input shape against the file's declared one; `check_faces` gives
the Python runners the same error as the SavedModel's.
"""

import numpy as np
import tensorflow as tf

from catface_keras.export.serving import (
    EMBEDDING_NORM_OUTPUT,
    EMBEDDING_OUTPUT,
    IMAGES_INPUT,
    RESIZE_METHOD,
    SERVING_IMAGE_SIZE,
    serving_attribute_names,
    serving_outputs,
)


def resize_matrix(image_size):
    """`(image_size, 112)` float32 `R` with `R @ column` = the antialiased bilinear resize
    of a 112-long column to `image_size` (`tf.image.resize`'s filter, `resize_for_model`).

    Read off the filter itself: row `i` of the identity resized to `(image_size, 1)`.
    """
    basis = np.eye(SERVING_IMAGE_SIZE, dtype=np.float32)[:, :, None, None]
    with tf.init_scope():  # eager, also while a function is traced
        columns = tf.image.resize(basis, [image_size, 1], method=RESIZE_METHOD, antialias=True)
    return np.ascontiguousarray(columns.numpy()[:, :, 0, 0].T)


def resize_faces(images, image_size):
    """`(batch, 112, 112, 3)` float32 -> `(batch, image_size, image_size, 3)`; the identity at
    112. Equal to `serving.resize_for_model` up to float rounding."""
    if image_size == SERVING_IMAGE_SIZE:
        return images
    matrix = resize_matrix(image_size)
    # Channels first, so that both products are plain (broadcast) matrix products: the
    # LiteRT converter writes a malformed tensor for a batch-dynamic einsum.
    planes = tf.transpose(images, [0, 3, 1, 2])
    planes = tf.matmul(tf.matmul(tf.constant(matrix), planes), tf.constant(matrix.T))
    return tf.transpose(planes, [0, 2, 3, 1])


def portable_outputs(model, images):
    """float32 `(batch, 112, 112, 3)` in [0, 255] -> the outputs of the module docstring:
    `serving.serving_outputs` with the resize written as matrix products."""
    return serving_outputs(model, images, resize=resize_faces)


def portable_function(model):
    """A `tf.function` of `portable_outputs` with input `images` float32 `(None, 112, 112, 3)`."""
    serving_attribute_names(model)  # checks the contract before tracing

    @tf.function(
        input_signature=[
            tf.TensorSpec(
                [None, SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3], tf.float32, name=IMAGES_INPUT
            )
        ]
    )
    def serve(images):
        return portable_outputs(model, images)

    return serve


def output_names(model):
    """The output names in the order the files list them: embedding, norm, attributes."""
    return (EMBEDDING_OUTPUT, EMBEDDING_NORM_OUTPUT, *serving_attribute_names(model))


def check_faces(faces):
    """`faces` (uint8 or float, `(batch, 112, 112, 3)` RGB) as float32, or a `ValueError`."""
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[1:] != (SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3) or not (
        np.issubdtype(faces.dtype, np.integer) or np.issubdtype(faces.dtype, np.floating)
    ):
        raise ValueError(
            f"`faces` must be uint8 or float (batch, {SERVING_IMAGE_SIZE}, {SERVING_IMAGE_SIZE}, "
            f"3) RGB aligned faces. Received: faces.shape={faces.shape}, "
            f"faces.dtype={faces.dtype}"
        )
    return faces.astype(np.float32, copy=False)
