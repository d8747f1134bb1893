"""TF Serving signatures of a CATFace model, preprocessing inside the graph.

Two signatures share one computation on aligned 112x112 RGB faces:

- `serving_default`: `images`, uint8 `(batch, 112, 112, 3)`;
- `serving_bytes`: `image_bytes`, string `(batch,)` of encoded JPEG/PNG (also BMP, GIF, WebP),
  decoded to RGB; a square image of another size is resized to 112x112. The image size is
  read from the header first, and an image of more than `max_image_pixels` pixels is refused
  before it is decoded (a small file can announce 20000x20000 pixels: gigabytes to decode).

Both return, per face, `embedding` `(batch, D)` float32 L2-normalised, `embedding_norm`
`(batch,)` (the norm before normalisation, AdaFace's image-quality proxy) and one `(batch,)`
probability (sigmoid of the logit) per attribute, keyed by its name (`Male`, `Bald`, ...).

When the model's `image_size` is not 112 the faces are resized inside the graph with
`tf.image.resize(method="bilinear", antialias=True)`: bilinear when enlarging, a triangle
filter over the covered pixels when shrinking (no aliasing).

The model contract (stage-1 `MultiBranchModel` and the stage-2 fused model alike): called on
float RGB in [0, 255] `(batch, S, S, 3)`, S = `model.image_size`, it returns
`{"embedding": (batch, D), "attribute_logits": (batch, A)}`, attributes in
`model.attribute_names` order. An imported iResNet (`IResNetEmbedder`, no `attribute_names`)
returns `{"embedding"}` only, and its signatures the embedding and its norm only.
"""

import tensorflow as tf
# The public `tf.function` API has no freezing; this is what tf2onnx and the TFLite converter
# call for it.
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from catface_keras.data.decoding import DEFAULT_MAX_IMAGE_PIXELS

SERVING_IMAGE_SIZE = 112
IMAGES_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
IMAGES_INPUT = "images"
BYTES_INPUT = "image_bytes"
EMBEDDING_OUTPUT = "embedding"
EMBEDDING_NORM_OUTPUT = "embedding_norm"
RESIZE_METHOD = "bilinear"  # with antialias=True

_IMAGES_EXPECTED = (
    f"`{IMAGES_INPUT}` must be uint8 [batch, {SERVING_IMAGE_SIZE}, {SERVING_IMAGE_SIZE}, 3] "
    "(RGB, aligned faces). Received shape:"
)
_BYTES_EXPECTED = (
    f"`{BYTES_INPUT}` must be a 1-D string tensor [batch] of encoded JPEG/PNG images. "
    "Received shape:"
)
_SQUARE_EXPECTED = (
    f"`{BYTES_INPUT}` must hold square aligned face crops (resized to {SERVING_IMAGE_SIZE}x"
    f"{SERVING_IMAGE_SIZE}). Received an image of height, width:"
)


def serving_attribute_names(model):
    """Checks the model contract; returns `model.attribute_names` as a tuple of str."""
    image_size = getattr(model, "image_size", None)
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(
            "`model` must have an int `image_size` (the side of its square input). "
            f"Received: model.image_size={image_size!r}"
        )
    names = tuple(getattr(model, "attribute_names", None) or ())
    reserved = {EMBEDDING_OUTPUT, EMBEDDING_NORM_OUTPUT}
    if not all(isinstance(name, str) and name for name in names) or (
        len(set(names)) != len(names) or reserved & set(names)
    ):
        raise ValueError(
            "`model.attribute_names` must be distinct non-empty strings other than "
            f"{sorted(reserved)} (they name the signature outputs). "
            f"Received: model.attribute_names={names!r}"
        )
    return names


def resize_for_model(images, image_size):
    """`(batch, 112, 112, 3)` float -> `(batch, image_size, image_size, 3)` float32.

    Bilinear with antialiasing (see the module docstring); the identity at 112.
    """
    images = tf.cast(images, tf.float32)
    if image_size == SERVING_IMAGE_SIZE:
        return images
    return tf.image.resize(images, [image_size, image_size], method=RESIZE_METHOD, antialias=True)


def serving_outputs(model, images, resize=resize_for_model):
    """The signatures' shared computation (and, with another `resize`, the portable files').

    Args:
        model: a model following the contract of the module docstring.
        images: float32 `(batch, 112, 112, 3)`, RGB in [0, 255].
        resize: `(images, image_size) -> (batch, image_size, image_size, 3)` float32.

    Returns:
        dict: `embedding` `(batch, D)` unit-norm, `embedding_norm` `(batch,)`, and one
        `(batch,)` sigmoid probability per attribute name.
    """
    names = serving_attribute_names(model)
    outputs = model(resize(images, model.image_size), training=False)
    embedding = tf.cast(outputs["embedding"], tf.float32)
    result = {
        EMBEDDING_OUTPUT: tf.math.l2_normalize(embedding, axis=-1),
        EMBEDDING_NORM_OUTPUT: tf.norm(embedding, axis=-1),
    }
    if names:  # an imported iResNet has no attribute outputs
        probabilities = tf.sigmoid(tf.cast(outputs["attribute_logits"], tf.float32))
        for index, name in enumerate(names):
            result[name] = probabilities[:, index]
    return result


def check_image_batch(images):
    """`images`, passed on once the graph has checked that it is `(batch, 112, 112, 3)`.

    The signature's TensorSpec says so, but a signature called by name (TF Serving, or
    `loaded.signatures[...]`) does not check shapes, so the graph does. The shape is compared
    at run time, padded so that a wrong rank fails this check and not a later op.
    """
    shape = _runtime_shape(images)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)
    valid = tf.logical_and(
        tf.equal(tf.size(shape), 4),
        tf.reduce_all(tf.equal(padded[1:4], [SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3])),
    )
    return _checked(images, valid, [_IMAGES_EXPECTED, shape])


def _checked(tensor, valid, message):
    """`tensor`, passed on only when `valid` holds; otherwise an error reading `message`.

    The check gates the data through `tf.cond`. As a mere control dependency it could be
    reordered by graph optimisation (a no-op reshape or identity it hangs on gets removed),
    and a later op would then fail first, with an unrelated message.
    """

    def refuse():
        with tf.control_dependencies([tf.debugging.Assert(False, message, summarize=8)]):
            return tf.identity(tensor)

    return tf.cond(valid, lambda: tf.identity(tensor), refuse)


def _runtime_shape(tensor):
    """`tf.shape(tensor)` with the static shape hidden, so that checks on it stay in the graph.

    TensorFlow drops an assertion that the static shape (the TensorSpec's) already answers,
    but nothing enforces that shape when the signature is called by name.
    """
    return tf.shape(tf.raw_ops.PlaceholderWithDefault(input=tensor, shape=tf.TensorShape(None)))


_TOO_LARGE = (
    f"`{BYTES_INPUT}` holds an image larger than the limit (not decoded). Received width, "
    "height and the limit in pixels:"
)


def header_size(data):
    """`(width, height)` int64 that the header of one encoded image announces.

    PNG, GIF, BMP and WebP headers are read from fixed byte positions, JPEG through
    `tf.image.extract_jpeg_shape`; `(0, 0)` for anything else (which does not decode).
    """
    padded = tf.strings.join([data, tf.constant(b"\0" * 32)])

    def number(position, length, big_endian=False):
        digits = tf.cast(
            tf.io.decode_raw(tf.strings.substr(padded, position, length), tf.uint8), tf.int64
        )
        powers = [256**i for i in range(length)]
        return tf.reduce_sum(digits * tf.constant(powers[::-1] if big_endian else powers, tf.int64))

    def starts(text, position=0):
        return tf.equal(tf.strings.substr(padded, position, len(text)), text)

    def signed32(value):
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    vp8l = number(21, 4)
    known = [
        (starts(b"\x89PNG\r\n\x1a\n"), number(16, 4, True), number(20, 4, True)),
        (starts(b"GIF8"), number(6, 2), number(8, 2)),
        (starts(b"BM"), signed32(number(18, 4)), signed32(number(22, 4))),
        (starts(b"RIFF") & starts(b"WEBPVP8X", 8), number(24, 3) + 1, number(27, 3) + 1),
        (starts(b"RIFF") & starts(b"WEBPVP8L", 8), vp8l % 16384 + 1, vp8l // 16384 % 16384 + 1),
        (starts(b"RIFF") & starts(b"WEBPVP8 ", 8), number(26, 2) % 16384, number(28, 2) % 16384),
    ]
    width, height = tf.constant(0, tf.int64), tf.constant(0, tf.int64)
    for matches, known_width, known_height in reversed(known):
        width = tf.where(matches, known_width, width)
        height = tf.where(matches, known_height, height)

    def jpeg_size():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[1], shape[0]

    return tf.cond(tf.io.is_jpeg(data), jpeg_size, lambda: (width, height))


def decode_image_batch(encoded, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """`(batch,)` encoded JPEG/PNG strings -> float32 `(batch, 112, 112, 3)` RGB in [0, 255].

    Grey or RGBA images become RGB (3 channels); a square image of another size is resized to
    112x112 (bilinear, antialiased); a non-square one is an error, and so is one whose header
    announces more than `max_image_pixels` pixels (checked before decoding).
    """
    shape = _runtime_shape(encoded)
    encoded = _checked(encoded, tf.equal(tf.size(shape), 1), [_BYTES_EXPECTED, shape])

    def decode_one(data):
        width, height = header_size(data)
        data = _checked(
            data, width * height <= max_image_pixels, [_TOO_LARGE, width, height, max_image_pixels]
        )
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        image = _checked(
            tf.cast(image, tf.float32), tf.equal(height, width), [_SQUARE_EXPECTED, height, width]
        )
        image = tf.cond(
            tf.equal(height, SERVING_IMAGE_SIZE),
            lambda: image,
            lambda: tf.image.resize(
                image, [SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE], method=RESIZE_METHOD,
                antialias=True,
            ),
        )
        return tf.ensure_shape(image, [SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3])

    return tf.map_fn(
        decode_one,
        encoded,
        fn_output_signature=tf.TensorSpec([SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3], tf.float32),
    )


class ServingArchive(tf.Module):
    """The two serving signatures over one frozen computation; `write_out` saves them.

    The weights are graph constants, not variables (`frozen_serving_function`): oneDNN then
    reorders each convolution kernel into its blocked layout once and caches it, where a
    variable's kernel is reordered on every call. At batch 1 that was 16 % of an IR-18's
    serving latency on a 2-core CPU (22.4 -> 18.9 ms); the outputs agree to 6e-8. The
    constants live in the graph, which protobuf caps at 2 GB: an IR-101 stage-2 network
    (about 0.3 GB in float32) fits.
    """

    def __init__(self, model, max_image_pixels):
        super().__init__(name="catface_serving")
        self.frozen, structure = frozen_serving_function(model)

        def outputs(images):
            return tf.nest.pack_sequence_as(structure, self.frozen(images))

        serve_images = tf.function(
            lambda images: outputs(tf.cast(check_image_batch(images), tf.float32)),
            input_signature=[
                tf.TensorSpec(
                    [None, SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3], tf.uint8, name=IMAGES_INPUT
                )
            ],
        )
        serve_bytes = tf.function(
            lambda image_bytes: outputs(decode_image_batch(image_bytes, max_image_pixels)),
            input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)],
        )
        # Attributes named after the signatures, as `keras.export.ExportArchive` names its
        # endpoints: `tf.saved_model.load(path).serving_default(images)` checks the TensorSpec.
        self._signatures = {IMAGES_SIGNATURE: serve_images, BYTES_SIGNATURE: serve_bytes}
        for name, function in self._signatures.items():
            setattr(self, name, function)

    def write_out(self, directory, verbose=False):
        """Saves the SavedModel into `directory` (`verbose` is accepted for
        `keras.export.ExportArchive`'s signature and ignored)."""
        tf.saved_model.save(self, str(directory), signatures=self._signatures)


def frozen_serving_function(model):
    """`(function, structure)`: `serving_outputs(model, images)` with `model`'s weights as
    constants, on float32 `(batch, 112, 112, 3)`; `function` returns the outputs flat, in the
    order of `tf.nest.flatten(structure)`."""
    concrete = tf.function(lambda images: serving_outputs(model, images)).get_concrete_function(
        tf.TensorSpec([None, SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3], tf.float32)
    )
    return convert_variables_to_constants_v2(concrete), concrete.structured_outputs


def serving_archive(model, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """A `ServingArchive` of `model` with the two serving signatures; `write_out` saves it.

    `max_image_pixels`: `serving_bytes` refuses larger images (from their header).
    """
    serving_attribute_names(model)
    if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or (
        max_image_pixels < 1
    ):
        raise ValueError(
            "`max_image_pixels` must be a positive integer. "
            f"Received: max_image_pixels={max_image_pixels!r}"
        )
    return ServingArchive(model, max_image_pixels)
