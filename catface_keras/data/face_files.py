"""Face image files with identity and attribute labels (what the CelebA and folder readers give).

A `FaceFiles` is a random-access face source: `example(i)` returns the
encoded bytes of image `i` and its labels, so training can visit the images
in any order (a per-epoch permutation from the seed) without holding them
in memory. `load_face_arrays` decodes a subset into memory for evaluation.
"""

import dataclasses

import numpy as np

from catface_keras.data.decoding import ImageDecodeError, SkippedImages, decode_image
from catface_keras.data.face_arrays import FaceArrays
from catface_keras.progress import track


@dataclasses.dataclass(frozen=True)
class FaceFiles:
    """Image files and their labels.

    Attributes:
        paths: `N` file paths.
        identities: `(N,)` int32 class indices in `[0, num_classes)`.
        attributes: `(N, A)` int32 in {-1, 0, 1} (-1: unknown), columns in
            the order of `attribute_names`.
        attribute_names: `A` names.
        num_classes: the number of identities.
    """

    paths: tuple
    identities: np.ndarray
    attributes: np.ndarray
    attribute_names: tuple
    num_classes: int

    def __len__(self):
        return len(self.paths)

    def example(self, index):
        """`(name, encoded bytes, identity, attributes (A,))` of image `index`."""
        path = self.paths[index]
        with open(path, "rb") as handle:
            encoded = handle.read()
        return path, encoded, int(self.identities[index]), self.attributes[index]


def relabel(identities):
    """Raw identity labels -> `(class indices 0..K-1 in sorted label order, K)`."""
    labels, indices = np.unique(np.asarray(identities), return_inverse=True)
    return indices.astype(np.int32), len(labels)


def whole_identities(identities, max_images=None, seed=0):
    """Indices of at most `max_images` images, taking whole identities.

    Identities are taken in an order drawn from `seed` until `max_images`
    is reached, so that a subset for verification keeps its genuine pairs.

    Args:
        identities: `(N,)` identity labels.
        max_images: the most images to keep, or None for all.

    Returns:
        `(M,)` sorted int indices.
    """
    identities = np.asarray(identities)
    if max_images is None or max_images >= len(identities):
        return np.arange(len(identities))
    labels, counts = np.unique(identities, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(labels))
    enough = int(np.searchsorted(np.cumsum(counts[order]), max_images)) + 1
    return np.flatnonzero(np.isin(identities, labels[order[:enough]]))[:max_images]


def load_face_arrays(files, image_size, skipped=None, max_images=None, seed=0, description="faces"):
    """Decodes files into memory, skipping (and counting) undecodable ones.

    Args:
        files: a `FaceFiles`.
        image_size: output side in pixels (see `decode_image`).
        skipped: a `SkippedImages` to count skipped images in (a new one if None).
        max_images: keep at most this many images, taking whole identities
            in an order drawn from `seed` so that genuine pairs remain.
        description: the progress bar's label.

    Returns:
        A `FaceArrays` (`(M, image_size, image_size, 3)` uint8 RGB).
    """
    skipped = skipped if skipped is not None else SkippedImages()
    indices = whole_identities(files.identities, max_images, seed)
    images = np.empty((len(indices), image_size, image_size, 3), np.uint8)
    decoded = np.zeros(len(indices), bool)
    for row, index in enumerate(track(indices, len(indices), f"decoding {description}")):
        name, encoded, _, _ = files.example(index)
        try:
            images[row] = decode_image(encoded, image_size)
            decoded[row] = True
        except ImageDecodeError as error:
            skipped.add(name, error)
    indices = indices[decoded]
    return FaceArrays(
        images[decoded],
        files.identities[indices],
        files.attributes[indices],
        tuple(files.attribute_names),
    )
