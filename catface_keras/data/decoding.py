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
import struct
import threading

import cv2
import keras
import numpy as np
import tensorflow as tf

from catface_keras.data.resizing import square_resize

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


# The most pixels an image may have (its header is read before it is decoded): a small file
# can claim 20000x20000 pixels and take gigabytes to decode. Face crops are far smaller; raise
# it with `data.max_image_pixels` (config) or `--max-image-pixels` (data convert).
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
_max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS


class ImageDecodeError(ValueError):
    """Bytes that do not decode to a whole image."""


class ImageTooLargeError(ImageDecodeError):
    """An image whose header announces more pixels than the limit (not decoded)."""


def max_image_pixels():
    """The pixel limit `decode_image` applies when not given one."""
    return _max_image_pixels


def set_max_image_pixels(limit):
    """Sets the default pixel limit of `decode_image` (None: back to the default)."""
    global _max_image_pixels
    if limit is None:
        limit = DEFAULT_MAX_IMAGE_PIXELS
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(
            f"`max_image_pixels` must be a positive integer. Received: max_image_pixels={limit!r}"
        )
    _max_image_pixels = limit


# JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8 and DAC CC) carry the frame size.
_JPEG_FRAME_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data):
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in _JPEG_FRAME_MARKERS:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, position + 5)
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        position += 2 + length
    return None


def _tiff_dimensions(data):
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        found = {}
        for entry in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHI4s", data, offset + 2 + 12 * entry)
            if tag in (256, 257):
                fmt = order + ("H" if kind == 3 else "I")
                found[tag] = struct.unpack_from(fmt, value)[0]
        return found.get(256), found.get(257)
    except struct.error:
        return None


def image_dimensions(data):
    """`(width, height)` from an encoded image's header, or None when not found.

    Reads PNG, JPEG, GIF, BMP, WebP and TIFF headers without decoding anything.
    """
    data = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack_from(">II", data, 16)
        if data[:2] == _JPEG_START:
            return _jpeg_dimensions(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack_from("<HH", data, 6)
        if data[:2] == b"BM":
            width, height = struct.unpack_from("<ii", data, 18)
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                width = int.from_bytes(data[24:27], "little") + 1
                height = int.from_bytes(data[27:30], "little") + 1
                return width, height
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                width, height = struct.unpack_from("<HH", data, 26)
                return width & 0x3FFF, height & 0x3FFF
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            dimensions = _tiff_dimensions(data)
            if dimensions and None not in dimensions:
                return dimensions
    except struct.error:
        return None
    return None


def check_image_pixels(data, limit=None):
    """Raises `ImageTooLargeError` when the header announces more than `limit` pixels."""
    limit = _max_image_pixels if limit is None else limit
    dimensions = image_dimensions(data)
    if dimensions is not None and dimensions[0] * dimensions[1] > limit:
        width, height = dimensions
        raise ImageTooLargeError(
            f"the header announces {width}x{height} = {width * height} pixels, more than the "
            f"limit of {limit} (not decoded; raise data.max_image_pixels for larger images)"
        )


def _is_truncated_jpeg(buffer):
    # OpenCV before 5.0 returns a grey-filled partial image for a truncated
    # JPEG; an end-of-image marker after the last scan tells a whole one.
    # (Entropy-coded data stuffs 0xFF as FF 00, so FF D9 is only ever a marker.)
    if buffer[:2].tobytes() != _JPEG_START:
        return False
    tail = buffer[-_JPEG_TAIL_BYTES:].tobytes()
    end = tail.rfind(_JPEG_END)
    return end < 0 or end < tail.rfind(_JPEG_START_OF_SCAN)


def decode_image(data, image_size=None, max_pixels=None):
    """Decodes an encoded image (JPEG, PNG, BMP, WebP, TIFF) to RGB uint8.

    Grey images are expanded to three channels and an alpha channel is
    dropped. With `image_size`, a non-square image is centre-cropped to a
    square (CelebA's 178x218 aligned faces keep rows 20..197) and resized
    to `(image_size, image_size)` (area interpolation when shrinking).

    Args:
        data: the encoded bytes (`bytes`, `bytearray` or 1-D uint8 array).
        image_size: output side in pixels, or None for the decoded size.
        max_pixels: refuse an image whose header announces more pixels than
            this, before decoding it (default: `max_image_pixels()`).

    Returns:
        `(height, width, 3)` uint8 RGB.

    Raises:
        ImageDecodeError: empty, undecodable or truncated data, or
            (`ImageTooLargeError`) an image over the pixel limit.
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
    check_image_pixels(buffer, max_pixels)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError("not a decodable image (corrupt, truncated or unknown format)")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image_size is not None:
        image = square_resize(image, image_size)
    return image


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
