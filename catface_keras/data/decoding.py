"""Image decoding for real face data: RGB uint8 out, corrupt images skipped and counted.

Everything the data readers return is RGB `uint8`. OpenCV decodes to BGR;
`decode_image` converts explicitly, so no caller sees BGR.

Two kinds of failure are kept apart:

- a corrupt image (undecodable or truncated bytes) is a fact of large face
  datasets: training skips it, counts it in a `SkippedImages`, and goes on
  (`decode_elements`; `SkippedImagesLogger` reports the count every epoch);
- a missing file, a wrong header or a label that does not match an image
  is a broken dataset: the readers stop with an error naming the file and
  line, before training starts.
"""

import logging
import threading

import cv2
import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_JPEG_START_OF_SCAN = b"\xff\xda"
# The end-of-image marker is looked for this close to the end of the data.
_JPEG_TAIL_BYTES = 65536
# Names of skipped images kept for the log; the count itself is exact.
_NAMES_KEPT = 20
# Images per Python call in `tf.data`: amortises the call's overhead.
_CHUNK_SIZE = 32


class ImageDecodeError(ValueError):
    """Bytes that do not decode to a whole image."""


def _is_truncated_jpeg(buffer):
    # OpenCV before 5.0 returns a grey-filled partial image for a truncated
    # JPEG; an end-of-image marker after the last scan tells a whole one.
    # (Entropy-coded data stuffs 0xFF as FF 00, so FF D9 is only ever a marker.)
    if buffer[:2].tobytes() != _JPEG_START:
        return False
    tail = buffer[-_JPEG_TAIL_BYTES:].tobytes()
    end = tail.rfind(_JPEG_END)
    return end < 0 or end < tail.rfind(_JPEG_START_OF_SCAN)


def decode_image(data, image_size=None):
    """Decodes an encoded image (JPEG, PNG, BMP, WebP, TIFF) to RGB uint8.

    Grey images are expanded to three channels and an alpha channel is
    dropped. With `image_size`, a non-square image is centre-cropped to a
    square (CelebA's 178x218 aligned faces keep rows 20..197) and resized
    to `(image_size, image_size)` (area interpolation when shrinking).

    Args:
        data: the encoded bytes (`bytes`, `bytearray` or 1-D uint8 array).
        image_size: output side in pixels, or None for the decoded size.

    Returns:
        `(height, width, 3)` uint8 RGB.

    Raises:
        ImageDecodeError: empty, undecodable or truncated data.
    """
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageDecodeError(f"encoded data must be uint8 bytes, not {data.dtype}")
        buffer = data.reshape(-1)
    else:
        buffer = np.frombuffer(data, np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError("empty image data")
    if _is_truncated_jpeg(buffer):
        raise ImageDecodeError("truncated JPEG (no end-of-image marker after the last scan)")
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError("not a decodable image (corrupt, truncated or unknown format)")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image_size is not None:
        image = square_resize(image, image_size)
    return image


def square_resize(image, image_size):
    """`(H, W, 3)` -> `(image_size, image_size, 3)`: centre crop to a square, then resize."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top : top + side, left : left + side]
    if side == image_size:
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if side > image_size else cv2.INTER_LINEAR
    return cv2.resize(image, (image_size, image_size), interpolation=interpolation)


class SkippedImages:
    """The distinct images skipped as undecodable, with a few of their names.

    An image is counted once however often it is skipped (every epoch, or
    again when an epoch is topped up). `tf.data` decodes in parallel
    threads, so `add` takes a lock.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._seen = set()
        self.names = []

    @property
    def count(self):
        return len(self._seen)

    def add(self, name, reason):
        with self._lock:
            if name in self._seen:
                return
            self._seen.add(name)
            if len(self.names) < _NAMES_KEPT:
                self.names.append(f"{name} ({reason})")


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def decode_elements(elements, image_size, skipped, chunk_size=_CHUNK_SIZE):
    """Decodes a `tf.data` stream of encoded faces, dropping corrupt ones.

    The decoder is `decode_image` (OpenCV) inside `tf.numpy_function`, so
    that one decoder gives the same pixels in training, conversion and
    evaluation, and a failure becomes a filtered-out element and a count in
    `skipped` instead of an error that would end the epoch. Elements are
    decoded `chunk_size` at a time (one Python call per chunk, chunks in
    parallel); order is kept, so the stream is a function of its input.

    Args:
        elements: a dataset of `(encoded tf.string, name tf.string,
            identity int32, attributes int32 (A,))`.
        image_size: output side in pixels.
        skipped: a `SkippedImages` that counts the dropped images.
        chunk_size: elements per decoding call.

    Returns:
        A dataset of `(image uint8 (image_size, image_size, 3), identity
        int32, attributes int32 (A,))`.
    """

    def decode_chunk(encoded, names):
        images = np.zeros((len(encoded), image_size, image_size, 3), np.uint8)
        decoded = np.zeros(len(encoded), bool)
        for row, (data, name) in enumerate(zip(encoded, names)):
            try:
                images[row] = decode_image(data, image_size)
                decoded[row] = True
            except ImageDecodeError as error:
                skipped.add(_text(name), error)
        return images, decoded

    def decode(encoded, names, identities, attributes):
        images, decoded = tf.numpy_function(
            decode_chunk, [encoded, names], [tf.uint8, tf.bool], stateful=False
        )
        images.set_shape((None, image_size, image_size, 3))
        decoded.set_shape((None,))
        return images, decoded, identities, attributes

    chunks = elements.batch(chunk_size).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    faces = chunks.unbatch().filter(lambda image, decoded, identity, attributes: decoded)
    return faces.map(lambda image, decoded, identity, attributes: (image, identity, attributes))


class SkippedImagesLogger(keras.callbacks.Callback):
    """Logs how many images have been skipped as undecodable, at the end of every epoch.

    Adds the count to the epoch's logs (`skipped_images`, also in
    TensorBoard). Decoding runs ahead of training (prefetch), so an image
    first skipped near an epoch boundary may be reported an epoch early.
    """

    def __init__(self, skipped):
        super().__init__()
        self.skipped = skipped

    def on_epoch_end(self, epoch, logs=None):
        count = self.skipped.count
        if count:
            logger.warning(
                "epoch %d: %d undecodable image(s) skipped so far, e.g. %s",
                epoch + 1,
                count,
                "; ".join(self.skipped.names[:3]),
            )
        if logs is not None:
            logs["skipped_images"] = float(count)
