"""A photo file -> its aligned face crops."""

import dataclasses
import os
import pathlib

import numpy as np

from catface_keras.alignment.detection import DetectedFace, select_faces
from catface_keras.landmark_alignment import ALIGNED_SIZE, align_face
from catface_keras.data.decoding import decode_image
from catface_keras.data.image_folder import IMAGE_SUFFIXES


@dataclasses.dataclass(frozen=True)
class AlignedFace:
    """A face cut out of a photo and warped onto the ArcFace template.

    Attributes:
        image: `(size, size, 3)` uint8 RGB.
        face: the `DetectedFace` it came from (box and landmarks in photo pixels).
    """

    image: np.ndarray
    face: DetectedFace


def read_photo(path):
    """The photo at `path` as `(H, W, 3)` uint8 RGB.

    Raises:
        OSError: the file cannot be read.
        catface_keras.data.decoding.ImageDecodeError: it is not a whole image.
    """
    with open(path, "rb") as handle:
        return decode_image(handle.read())


def align_photo(image, detector, all_faces=False, size=ALIGNED_SIZE):
    """Detects faces in `image` (RGB uint8) and aligns the largest one, or all of them.

    Returns:
        A list of `AlignedFace`, largest box first; empty when no face is found.
    """
    return align_confident_faces(image, detector, all_faces, size)[0]


def align_confident_faces(image, detector, all_faces=False, size=ALIGNED_SIZE,
                          min_confidence=0.0):
    """`align_photo` keeping only the detections scored >= `min_confidence`.

    Returns:
        `(aligned, dropped)`: the `AlignedFace`s, largest box first, and the
        `DetectedFace`s scored below `min_confidence`, in the detector's order.
    """
    detected = detector.detect(image)
    kept = [face for face in detected if face.confidence >= min_confidence]
    dropped = [face for face in detected if face.confidence < min_confidence]
    faces = select_faces(kept, all_faces)
    return [AlignedFace(align_face(image, face.landmarks, size), face) for face in faces], dropped


def list_images(folder):
    """Relative POSIX paths of the image files under `folder` (recursively), sorted.

    Hidden files and folders (a leading dot) are left out.
    """
    folder = pathlib.Path(folder)
    found = []
    for root, directories, files in os.walk(folder):
        directories[:] = sorted(name for name in directories if not name.startswith("."))
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                found.append(pathlib.Path(root, name).relative_to(folder).as_posix())
    return sorted(found)
