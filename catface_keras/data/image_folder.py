"""Image-folder datasets: one folder per identity, an optional attribute CSV.

    root/
      alice/0001.jpg  alice/0002.png ...
      bob/0001.jpg ...
    attributes.csv          (optional, anywhere)  path,Male,Bald,...
                                                  alice/0001.jpg,0,0,...

Identity folders are taken in sorted name order and become classes
0..K-1 (folders without images are left out); images are the files
directly inside them with an image suffix, sorted. The CSV's `path` is
relative to the root; values are 1, 0 or -1 (unknown). Without a CSV every
attribute is unknown (-1), so the SB loss ignores it.

For evaluation, a sub-folder named `_distractors` holds faces of people no
probe shows (`SOURCE.evaluation_faces`). Images come back as RGB uint8 whatever their file format (OpenCV's BGR is
converted; AdaFace's official loader, by contrast, feeds BGR).
"""

import dataclasses
import logging
import os
import pathlib

import numpy as np

from catface_keras.data.attribute_csv import read_attribute_csv
from catface_keras.data.decoding import SkippedImages
from catface_keras.data.face_arrays import EvaluationFaces
from catface_keras.data.face_files import FaceFiles, load_face_arrays
from catface_keras.data.pairs_file import read_pair_faces
from catface_keras.soft_biometrics import MISSING_LABEL
from catface_keras.soft_biometrics import PAPER_ATTRIBUTES

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _is(entry, kind):
    """Whether a directory entry is a folder (`kind` "dir") or a file; an entry whose type
    cannot be read (a symlink loop) is left out with a warning instead of ending the run."""
    try:
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError as error:
        logger.warning("left out %s: %s", entry.path, error.strerror or error)
        return False


def _visible(name):
    return not name.startswith(".")


def _csv_key(text):
    """A CSV path as the relative POSIX path it names (`./a\\b.jpg` -> `a/b.jpg`)."""
    parts = [part for part in text.replace("\\", "/").split("/") if part not in ("", ".")]
    return "/".join(parts)


def read_image_folder(root, attributes_csv=None, attribute_names=PAPER_ATTRIBUTES):
    """Lists an image-folder dataset.

    Args:
        root: the folder of identity folders.
        attributes_csv: optional CSV `path,attr1,...` (paths relative to `root`).
        attribute_names: the attributes to read, in label order.

    Returns:
        A `FaceFiles`.

    Raises:
        ValueError: no images; or, with a CSV, a row naming an image that is
            not under `root`, an image with no row, a value other than 1, 0
            or -1, or a header without `path` or an attribute (the CSV file
            and line are named).
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"Image folder root {root} is not a directory")
    attribute_names = tuple(attribute_names)
    keys, identities, num_classes = [], [], 0
    folders = sorted(
        entry.name for entry in os.scandir(root) if _visible(entry.name) and _is(entry, "dir")
    )
    for folder in folders:
        images = sorted(
            entry.name
            for entry in os.scandir(root / folder)
            if _visible(entry.name)
            and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            and _is(entry, "file")
        )
        if images:
            keys += [f"{folder}/{name}" for name in images]
            identities += [num_classes] * len(images)
            num_classes += 1
    if not keys:
        raise ValueError(
            f"Image folder root {root} holds no identity folder with images "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    if attributes_csv is None:
        attributes = np.full((len(keys), len(attribute_names)), MISSING_LABEL, np.int32)
    else:
        attributes = _attributes_from_csv(attributes_csv, keys, attribute_names, root)
    return FaceFiles(
        paths=tuple(str(root / key) for key in keys),
        identities=np.array(identities, np.int32),
        attributes=attributes,
        attribute_names=attribute_names,
        num_classes=num_classes,
    )


def _attributes_from_csv(path, keys, attribute_names, root):
    rows = read_attribute_csv(path, "path", attribute_names)
    by_key = {}
    for text, (line, values) in rows.items():
        key = _csv_key(text)
        if key in by_key:
            raise ValueError(f"{path}:{line}: {text!r} names the image of line {by_key[key][0]}")
        by_key[key] = (line, values)
    listed = set(keys)
    for key, (line, _) in by_key.items():
        if key not in listed:
            raise ValueError(
                f"{path}:{line}: no image {key!r} under {root} (a row must name an image "
                f"inside an identity folder)"
            )
    attributes = np.empty((len(keys), len(attribute_names)), np.int32)
    for row, key in enumerate(keys):
        if key not in by_key:
            raise ValueError(
                f"{path}: no row for image {key!r} (with an attribute CSV every image needs "
                f"one; write -1 for an unknown value)"
            )
        attributes[row] = by_key[key][1]
    return attributes


DISTRACTOR_FOLDER = "_distractors"


def _subset(files, rows):
    return dataclasses.replace(
        files,
        paths=tuple(path for path, keep in zip(files.paths, rows) if keep),
        identities=files.identities[rows],
        attributes=files.attributes[rows],
    )


class ImageFolderSource:
    """The image-folder face source (`catface_keras.data.registry`)."""

    def training_faces(self, data, attribute_names):
        return read_image_folder(data.path, data.attributes_csv, attribute_names), None

    def default_attributes(self, path):
        return PAPER_ATTRIBUTES

    def conversion_sets(self, path, attributes_csv, attribute_names):
        return [("", read_image_folder(path, attributes_csv, attribute_names))]

    def evaluation_faces(self, path, image_size, attributes_csv=None, pairs_file=None):
        """The identities of the folder, or with `pairs_file` the images it pairs.

        Images are decoded to RGB, centre-cropped square and resized to
        `image_size`; undecodable ones are skipped and counted
        (`info["skipped_images"]`). `_distractors` images become
        `distractors`; attributes only when `attributes_csv` is given.
        """
        if pairs_file is not None:
            return read_pair_faces(path, pairs_file, image_size)
        files = read_image_folder(path, attributes_csv)
        skipped = SkippedImages()
        in_distractors = np.array(
            [pathlib.Path(p).parent.name == DISTRACTOR_FOLDER for p in files.paths], bool
        )
        people = _subset(files, ~in_distractors)
        faces = load_face_arrays(people, image_size, skipped, description="identities")
        if skipped.count and len(np.unique(faces.identities)) < 2:
            # Otherwise reported as "0 images, 0 labels", which hides why.
            raise ValueError(
                f"{path}: {skipped.count} of its {len(people.paths)} images do not decode (e.g. "
                f"{'; '.join(skipped.names[:3])}); the {len(faces.images)} that do show "
                f"{len(np.unique(faces.identities))} person(s), and evaluation needs two"
            )
        distractors = None
        if in_distractors.any():
            distractors = load_face_arrays(_subset(files, in_distractors), image_size, skipped,
                                           description="distractors").images
        return EvaluationFaces(
            images=faces.images,
            identities=faces.identities,
            attributes=faces.attributes if attributes_csv is not None else None,
            attribute_names=faces.attribute_names,
            distractors=distractors,
            info={"skipped_images": skipped.count, "skipped_examples": list(skipped.names)},
        )


SOURCE = ImageFolderSource()
