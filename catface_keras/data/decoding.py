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
import re
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
# Markers that stand alone (no length field): TEM and the restart markers.
_JPEG_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}
# The next marker as libjpeg's `next_marker` finds it: bytes other than 0xFF are skipped,
# then 0xFF fill bytes (the marker byte follows the last 0xFF of a run); FF 00 (a stuffed
# zero) is skipped as junk too. One 0xFF, not a run: the search stays linear.
_JPEG_NEXT_MARKER = re.compile(rb"\xff([^\x00\xff])")


def _jpeg_dimensions(data):
    """The frame size as libjpeg reads it: the first start-of-frame marker's.

    libjpeg's marker reader (`next_marker` in jdmarker.c) skips any bytes that are not
    a marker (with a warning) and any 0xFF fill bytes, so a walk that stopped at the
    first stray byte would miss a frame header the decoder still finds.
    """
    position, size = 2, len(data)
    while True:
        found = _JPEG_NEXT_MARKER.search(data, position)
        if found is None:
            return None
        position = found.start(1) - 1  # the 0xFF just before the marker byte
        marker = data[position + 1]
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # a second SOI, the end, a scan: no frame first
            return None
        if position + 4 > size:
            return None
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in _JPEG_FRAME_MARKERS:
            if position + 9 > size:
                return None
            height, width = struct.unpack_from(">HH", data, position + 5)
            return width, height
        # libjpeg skips `length - 2` bytes after the length field (none for a length below 2).
        position += 4 + max(length - 2, 0)


# TIFF field types libtiff accepts for ImageWidth / ImageLength -> struct codes.
_TIFF_INTEGER_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q", 17: "q"}


def _tiff_dimensions(data):
    """The first image's size as libtiff reads it (TIFF and BigTIFF; the first entry of
    a repeated tag wins, as in `TIFFReadDirectory`)."""
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", data, 2)[0] == 43
    if big:
        (offset,) = struct.unpack_from(order + "Q", data, 8)
        (count,) = struct.unpack_from(order + "Q", data, offset)
        entries, entry_size, value_size = offset + 8, 20, 8
    else:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        entries, entry_size, value_size = offset + 2, 12, 4
    if entries + count * entry_size > len(data):
        return None
    found = {}
    for entry in range(count):
        position = entries + entry * entry_size
        tag, kind = struct.unpack_from(order + "HH", data, position)
        if tag not in (256, 257) or tag in found:
            continue
        number = struct.unpack_from(order + ("Q" if big else "I"), data, position + 4)[0]
        code = _TIFF_INTEGER_TYPES.get(kind)
        if code is None or number != 1 or struct.calcsize(code) > value_size:
            return None  # libtiff refuses a size that is not one integer
        # The value sits in the entry's last field (left-justified when it is shorter).
        value = struct.unpack_from(order + code, data, position + entry_size - value_size)[0]
        if value < 0:
            return None
        found[tag] = value
    if 256 not in found or 257 not in found:
        return None
    return found[256], found[257]



def _gif_dimensions(data):
    """The larger of the logical screen and the first frame (the one `imdecode` reads)."""
    screen = struct.unpack_from("<HH", data, 6)
    position = 13
    if data[10] & 0x80:  # global colour table
        position += 3 << ((data[10] & 7) + 1)
    while position < len(data):
        block = data[position]
        if block == 0x2C:  # image descriptor
            width, height = struct.unpack_from("<HH", data, position + 5)
            return max(screen[0], width), max(screen[1], height)
        if block != 0x21:  # an extension is the only other block before the first image
            return None
        position += 2
        while position < len(data) and data[position]:
            position += 1 + data[position]
        position += 1
    return None


def _webp_dimensions(data):
    chunk = data[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


_NETPBM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*(\d+)")


def _netpbm_dimensions(data):
    """PBM/PGM/PPM (P1-P6) and PFM (PF, Pf): width and height follow the magic number."""
    head = data[: 1 << 12]
    first = _NETPBM_TOKEN.match(head, 2)
    second = first and _NETPBM_TOKEN.match(head, first.end())
    if not second:
        return None
    return int(first.group(1)), int(second.group(1))


_RADIANCE_SIZE = re.compile(rb"\n\n-Y (\d+) \+X (\d+)\s")


def _radiance_dimensions(data):
    """Radiance HDR: the resolution line after the blank line ending the header
    (OpenCV's reader takes only the `-Y H +X W` orientation)."""
    found = _RADIANCE_SIZE.search(data[: 1 << 16])
    return (int(found.group(2)), int(found.group(1))) if found else None


def image_dimensions(data):
    """`(width, height)` from an encoded image's header, or None when it cannot be read.

    Reads the size where the decoder (OpenCV with libjpeg-turbo, libpng, libtiff,
    libwebp) takes it from, without decoding anything: JPEG, PNG, BMP, GIF, WebP,
    TIFF/BigTIFF, PBM/PGM/PPM/PFM, Sun raster and Radiance HDR. Formats whose size
    is not read here (JPEG 2000, AVIF, OpenEXR, PAM ...) give None.
    """
    data = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            # libpng refuses a file whose first chunk is not a 13-byte IHDR.
            if data[8:16] != b"\x00\x00\x00\x0dIHDR":
                return None
            return struct.unpack_from(">II", data, 16)
        if data[:3] == b"\xff\xd8\xff":  # OpenCV's JPEG signature
            return _jpeg_dimensions(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return _gif_dimensions(data)
        if data[:2] == b"BM":
            (header_size,) = struct.unpack_from("<I", data, 14)
            if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
                return struct.unpack_from("<HH", data, 18)
            if header_size >= 36:
                width, height = struct.unpack_from("<ii", data, 18)
                return abs(width), abs(height)
            return None
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_dimensions(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_dimensions(data)
        if data[:1] == b"P" and data[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6", b"F", b"f"):
            return _netpbm_dimensions(data)
        if data[:4] == b"\x59\xa6\x6a\x95":  # Sun raster
            width, height = struct.unpack_from(">ii", data, 4)
            return (width, height) if width >= 0 and height >= 0 else None
        if data[:10] == b"#?RADIANCE" or data[:6] == b"#?RGBE":
            return _radiance_dimensions(data)
    except (struct.error, IndexError):
        return None
    return None


def check_image_pixels(data, limit=None):
    """Refuses, before decoding, an image over `limit` pixels or whose size cannot be read.

    Raises:
        ImageTooLargeError: the header announces more than `limit` pixels.
        ImageDecodeError: the size cannot be read from the header (an unknown format or a
            damaged header): without it nothing bounds what decoding would allocate.
    """
    limit = _max_image_pixels if limit is None else limit
    dimensions = image_dimensions(data)
    if dimensions is None:
        raise ImageDecodeError(
            "cannot read the image size from its header (damaged, or a format other than "
            "JPEG, PNG, BMP, GIF, WebP, TIFF, PNM, Sun raster or HDR); refused without decoding"
        )
    width, height = dimensions
    if width * height > limit:
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
            this, before decoding it (default: `max_image_pixels()`); an image
            whose size cannot be read from its header is refused too.

    Returns:
        `(height, width, 3)` uint8 RGB.

    Raises:
        ImageDecodeError: empty, undecodable or truncated data, a header
            whose size cannot be read, or (`ImageTooLargeError`) an image over
            the pixel limit.
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
