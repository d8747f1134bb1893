"""Round two, item 1: every format's size read where its decoder reads it; unknown sizes refused.

A JPEG with junk bytes before its frame header decodes (libjpeg skips them) although a walk
that stops at the first stray byte finds no size; the same holds for other formats whose size
the old header check misread or did not read. Each hostile file here is a few hundred bytes.
"""

import struct
import zlib

import cv2
import numpy as np
import pytest
from data.face_writers import encode, face_image

from catface_keras.data.decoding import (
    ImageDecodeError,
    ImageTooLargeError,
    check_image_pixels,
    decode_image,
    image_dimensions,
    set_max_image_pixels,
)
from catface_keras.data.insightface_bin import read_verification_bin
from catface_keras.data.image_files import load_face_image

from reliability.helpers import png_bomb

BIG = 20000


def jpeg_with_size(width, height, junk=b"\x00\x17", progressive=False):
    """A real 16x16 JPEG whose frame header is rewritten to `width` x `height`, with `junk`
    (bytes that are not a marker) put just before the frame marker."""
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    data = cv2.imencode(".jpg", face_image(0, 16, 16), params)[1].tobytes()
    frame = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    assert frame > 0
    resized = data[: frame + 5] + struct.pack(">HH", height, width) + data[frame + 9 :]
    return resized[:frame] + junk + resized[frame:]


@pytest.mark.parametrize("junk", [b"\x00\x17", b"\xff\x00", b"\x13" * 40, b"\xff\xff\x00\x00"])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_jpeg_with_junk_before_its_frame_header_is_measured(junk, progressive):
    bomb = jpeg_with_size(BIG, BIG, junk, progressive)
    assert len(bomb) < 1000
    assert image_dimensions(bomb) == (BIG, BIG)
    # Before: "size unknown", no limit applied, and libjpeg decoded 20000x20000 (1.2 GB).
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        check_image_pixels(bomb)


def test_the_junk_jpeg_really_decodes_at_its_frame_size_and_is_now_refused():
    # 2000x1500: small enough to decode here, so the test shows libjpeg reads past the junk.
    image = jpeg_with_size(2000, 1500)
    assert image_dimensions(image) == (2000, 1500)
    set_max_image_pixels(1_000_000)
    try:
        with pytest.raises(ImageTooLargeError, match="2000x1500"):
            decode_image(image)
    finally:
        set_max_image_pixels(None)
    assert decode_image(image).shape == (1500, 2000, 3)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _tiff(entries, big=False):
    """A little-endian TIFF (or BigTIFF) whose first IFD holds `entries` [(tag, type, value)]."""
    if big:
        head = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16)
        ifd = struct.pack("<Q", len(entries)) + b"".join(
            struct.pack("<HHQQ", tag, kind, 1, value) for tag, kind, value in entries)
    else:
        head = b"II*\x00" + struct.pack("<I", 8)
        ifd = struct.pack("<H", len(entries)) + b"".join(
            struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries)
    return head + ifd + b"\x00" * 16


def _gif(screen, frame):
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)
    extension = b"\x21\xf9\x04\x00\x00\x00\x00\x00"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0)
    return header + extension + descriptor + b"\x02\x02\x44\x01\x00\x3b"


HOSTILE = {
    # The frame of a GIF, larger than its logical screen: the old check read the screen only.
    "gif frame larger than the screen": _gif((16, 16), (BIG, BIG)),
    # OS/2 bitmaps keep 16-bit sizes at offset 18.
    "os/2 bmp": b"BM" + struct.pack("<IHHI", 26, 0, 0, 26) + struct.pack("<IHHHH", 12, BIG, BIG, 1, 24),
    "bigtiff": _tiff([(256, 4, BIG), (257, 4, BIG)], big=True),
    # libtiff keeps the first of two ImageWidth entries; the old check kept the last.
    "tiff with a repeated tag": _tiff([(256, 4, BIG), (256, 4, 8), (257, 4, BIG)]),
    "pgm with a comment": b"P5\n# made by hand\n20000 20000\n255\n" + b"\x00" * 64,
    "sun raster": b"\x59\xa6\x6a\x95" + struct.pack(">7i", BIG, BIG, 8, 0, 1, 0, 0),
    "radiance hdr": b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + b"\x00" * 32,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_format_is_measured_where_its_decoder_reads_the_size(name):
    assert image_dimensions(HOSTILE[name]) == (BIG, BIG)
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        decode_image(HOSTILE[name])


UNREADABLE = {
    "png whose first chunk is not IHDR": b"\x89PNG\r\n\x1a\n" + _png_chunk(b"tEXt", b"a\x00b")
    + png_bomb()[8:],
    "jpeg that ends before its frame header": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 9,
    "jpeg with a scan before any frame": b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 16,
    "jpeg 2000 codestream": b"\xff\x4f\xff\x51\x00\x2f\x00\x00" + struct.pack(">II", BIG, BIG),
    "tiff without an ImageLength": _tiff([(256, 4, 8)]),
    "bmp with an unknown header size": b"BM" + struct.pack("<IHHII", 40, 0, 0, 40, 20) + b"\x00" * 20,
    "text": b"hello, this is not an image at all",
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_an_image_whose_size_cannot_be_read_is_refused_unread(name):
    assert image_dimensions(UNREADABLE[name]) is None
    # Before: "size unknown" meant "no limit" and the bytes went to the decoder.
    with pytest.raises(ImageDecodeError, match="cannot read the image size"):
        check_image_pixels(UNREADABLE[name])


@pytest.mark.parametrize("suffix, params", [
    (".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []),
    (".webp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".tif", []), (".ppm", []),
    (".pgm", []), (".ras", []), (".hdr", []), (".gif", []),
])
def test_ordinary_images_are_measured_as_they_decode(suffix, params):
    image = face_image(1, 24, 40)
    if suffix == ".pgm":
        image = image[..., :1]
    ok, data = cv2.imencode(suffix, image, params)
    assert ok
    assert image_dimensions(data.tobytes()) == (40, 24)
    assert decode_image(data.tobytes()).shape == (24, 40, 3)


def test_every_decode_path_refuses_the_junk_jpeg(tmp_path):
    bomb = jpeg_with_size(BIG, BIG)
    photo = tmp_path / "bomb.jpg"
    photo.write_bytes(bomb)
    # inspect / visualisation / verify read single photos through load_face_image.
    with pytest.raises(ValueError, match=r"bomb.jpg.*20000x20000"):
        load_face_image(photo, 112)
    # .bin loading: the index of the refused image is named.
    import pickle

    binary = tmp_path / "lfw.bin"
    face = encode(face_image(2, 16, 16))
    binary.write_bytes(pickle.dumps(([face, bomb], [True])))
    with pytest.raises(ValueError, match=r"image 1 .*20000x20000"):
        read_verification_bin(binary)
    np.testing.assert_equal(decode_image(face).shape, (16, 16, 3))
