"""Face photos read from image files for inspection and figures (not training).

`load_face_image(path, size)` gives one face as the models take it: RGB uint8,
centre-cropped square and resized to `size`. Training data goes through the
dataset readers instead (`catface_keras.data.sources`), which skip and count
bad images rather than stop.
"""

import pathlib

from catface_keras.choices import IMAGE_SUFFIXES
from catface_keras.data.resizing import square_resize

MIN_SIZE = 16


def load_face_image(path, size):
    """Reads a face as `(size, size, 3)` uint8 RGB (centre-cropped square, resized).

    Raises:
        ValueError: `size` below 16, or a file that is missing or not a readable image.
    """
    if size < MIN_SIZE:
        raise ValueError(f"`size` must be at least {MIN_SIZE}. Received: size={size}")
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"input {path} does not exist")
    # Imported here: the decoder module loads TensorFlow, which the CLI's checks do without.
    from catface_keras.data.decoding import ImageDecodeError, decode_image

    try:
        # Checks the header's pixel count before decoding (data.max_image_pixels).
        image = decode_image(path.read_bytes())
    except ImageDecodeError as error:
        raise ValueError(f"cannot read image {path}: {error}") from None
    return square_resize(image, size)


def face_image_files(path, max_images=1):
    """`[path]` for a file, or the first `max_images` images of a directory (sorted)."""
    if max_images < 1:
        raise ValueError(f"`max_images` must be at least 1. Received: max_images={max_images}")
    path = pathlib.Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in directory {path}")
        return files[:max_images]
    if path.is_file():
        return [path]
    raise ValueError(f"input {path} does not exist")
