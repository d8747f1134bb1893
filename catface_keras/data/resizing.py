"""Square face crops at a model's input size: the one resize of the package.

A face is centre-cropped to a square and resized with OpenCV: area
interpolation when shrinking (each output pixel averages the input pixels it
covers, so no aliasing), bilinear when enlarging. Training data decoding,
`catface evaluate`, `embed`, `verify`, `degrade` and `inspect` all resize this
way, so a face looks the same to the model whichever command reads it.
"""

import cv2
import numpy as np

from catface_keras.progress import progress


def interpolation_for(source_side, size):
    """OpenCV's flag for resizing a `source_side` square to `size`: area or bilinear."""
    return cv2.INTER_AREA if source_side > size else cv2.INTER_LINEAR


def square_resize(image, size):
    """`(H, W, C)` -> `(size, size, C)`: centre crop to a square, then resize."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=interpolation_for(side, size))


def resize_faces(images, size, description=None):
    """`(N, S, S, 3)` uint8 -> `(N, size, size, 3)` (`square_resize` of each);
    returned as given when `S == size`. With `description`, reports progress."""
    images = np.asarray(images)
    if images.shape[1:3] == (size, size):
        return images
    resized = np.empty((len(images), size, size, images.shape[-1]), images.dtype)
    with progress(len(images) if description else 0, description or "") as bar:
        for index, image in enumerate(images):
            resized[index] = square_resize(image, size)
            bar.update(1)
    return resized
