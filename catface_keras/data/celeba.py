"""CelebA (aligned): identities, 40 attributes and the official partition.

A CelebA root holds `img_align_celeba/*.jpg` (178x218) and three text files,
either side by side (torchvision's layout) or in the official download's
`Img/`, `Anno/` and `Eval/` folders:

    identity_CelebA.txt     file identity
    list_attr_celeba.txt    count line, header of 40 names, file + 40 values in {-1, 1}
    list_eval_partition.txt file 0|1|2 (train / val / test)

CelebA's -1 means "no", so attributes become the project's {0, 1} labels
(1 -> 1, -1 -> 0); the project's -1 (`MISSING_LABEL`, unknown) never comes
from CelebA. The paper's protocol (docs/PAPER.md section 8) is identity-disjoint:
`celeba_splits` trains on the train partition, relabelled to classes
0..K-1, and holds out the test partition's identities for verification
pairs. Example:

>>> train, heldout = celeba_splits("data/celeba")
>>> train.attribute_names, train.identities.max() == train.num_classes - 1
(('Male', 'Bald', 'Big_Nose', 'Chubby', 'Narrow_Eyes'), True)
"""

import dataclasses
import os
import pathlib

import numpy as np

from catface_keras.data.face_files import FaceFiles, relabel
from catface_keras.data.tfrecord import HELDOUT_DIRECTORY
from catface_keras.soft_biometrics import PAPER_ATTRIBUTES

IMAGE_DIRECTORY = "img_align_celeba"
IDENTITY_FILE = "identity_CelebA.txt"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
PARTITIONS = ("train", "val", "test")
NUM_ATTRIBUTES = 40
# Where each file may be: torchvision's flat layout, or the official download's folders.
_FOLDERS = ("", "Anno", "Eval", "Img")


@dataclasses.dataclass(frozen=True)
class CelebA:
    """The CelebA table, one row per image, in the identity file's order.

    Attributes:
        paths: `N` image paths.
        identities: `(N,)` int32 CelebA identity numbers (1..10177).
        attributes: `(N, A)` int32 in {0, 1}, columns as `attribute_names`.
        attribute_names: the `A` selected attribute names.
        partitions: `(N,)` int8, 0 train, 1 val, 2 test.
    """

    paths: tuple
    identities: np.ndarray
    attributes: np.ndarray
    attribute_names: tuple
    partitions: np.ndarray


def find_celeba_file(root, name):
    """The path of CelebA file or folder `name` under `root`, flat or in `Anno/`, `Eval/`, `Img/`.

    Raises:
        ValueError: naming every place looked at.
    """
    root = pathlib.Path(root)
    for folder in _FOLDERS:
        path = root / folder / name
        if path.exists():
            return path
    places = ", ".join(str(root / folder / name) for folder in _FOLDERS)
    raise ValueError(f"CelebA root {root} has no {name} (looked at {places})")


def _lines(path):
    """`(line number, fields)` of the non-empty lines of a text file."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"Cannot read {path}: {error.strerror}") from error
    numbered = enumerate(text.splitlines(), 1)
    return [(number, line.split()) for number, line in numbered if line.strip()]


def _int_field(path, number, text, what):
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"{path}:{number}: {what} must be an integer. Received: {text!r}"
        ) from None


def _read_file_column(path, what, allowed=None):
    """`{file: (line, int value)}` of a `file value` text file."""
    rows = {}
    for number, fields in _lines(path):
        if len(fields) != 2:
            raise ValueError(
                f"{path}:{number}: expected 'file {what}'. Received: {' '.join(fields)!r}"
            )
        value = _int_field(path, number, fields[1], what)
        if allowed is not None and value not in allowed:
            raise ValueError(f"{path}:{number}: {what} must be one of {allowed}. Received: {value}")
        if fields[0] in rows:
            raise ValueError(f"{path}:{number}: {fields[0]} is also on line {rows[fields[0]][0]}")
        rows[fields[0]] = (number, value)
    return rows


def _read_attributes(path, attribute_names):
    """`{file: (line, (A,) int32 in {0, 1})}` for the selected attributes."""
    lines = _lines(path)
    if len(lines) < 2:
        raise ValueError(
            f"{path}: expected a count line and a header line of {NUM_ATTRIBUTES} names"
        )
    count = _int_field(path, lines[0][0], lines[0][1][0], "the image count")
    header_line, header = lines[1]
    if len(header) != NUM_ATTRIBUTES:
        raise ValueError(
            f"{path}:{header_line}: expected {NUM_ATTRIBUTES} attribute names, found {len(header)}"
        )
    unknown = [name for name in attribute_names if name not in header]
    if unknown:
        raise ValueError(
            f"`attribute_names` must be CelebA attributes; unknown: {unknown}. CelebA has: "
            f"{', '.join(header)}. Received: attribute_names={list(attribute_names)}"
        )
    columns = [1 + header.index(name) for name in attribute_names]
    rows = {}
    for number, fields in lines[2:]:
        if len(fields) != NUM_ATTRIBUTES + 1:
            raise ValueError(
                f"{path}:{number}: expected a file name and {NUM_ATTRIBUTES} values, "
                f"found {len(fields)} fields"
            )
        values = [fields[column] for column in columns]
        if any(value not in ("1", "-1") for value in values):
            raise ValueError(
                f"{path}:{number}: attribute values must be 1 or -1. Received: {values}"
            )
        if fields[0] in rows:
            raise ValueError(f"{path}:{number}: {fields[0]} is also on line {rows[fields[0]][0]}")
        rows[fields[0]] = (number, np.array([value == "1" for value in values], np.int32))
    if len(rows) != count:
        raise ValueError(f"{path}:{lines[0][0]}: says {count} images, but {len(rows)} rows follow")
    return rows


def read_celeba(root, attribute_names=PAPER_ATTRIBUTES):
    """Reads a CelebA root.

    Args:
        root: the CelebA folder (see the module docstring for its layout).
        attribute_names: CelebA attribute names to keep, in label order.

    Returns:
        A `CelebA`.

    Raises:
        ValueError: a missing file, a malformed line (file and line named),
            an image listed in one file but not another, a listed image that
            is not in `img_align_celeba`, or an unknown attribute name.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"CelebA root {root} is not a directory")
    attribute_names = tuple(attribute_names)
    identity_path = find_celeba_file(root, IDENTITY_FILE)
    attribute_path = find_celeba_file(root, ATTRIBUTE_FILE)
    partition_path = find_celeba_file(root, PARTITION_FILE)
    image_directory = find_celeba_file(root, IMAGE_DIRECTORY)
    identities = _read_file_column(identity_path, "identity")
    attributes = _read_attributes(attribute_path, attribute_names)
    partitions = _read_file_column(partition_path, "partition", allowed=(0, 1, 2))
    if not identities:
        raise ValueError(f"{identity_path} lists no images")
    for path, rows in ((attribute_path, attributes), (partition_path, partitions)):
        for name, (number, _) in rows.items():
            if name not in identities:
                raise ValueError(f"{path}:{number}: {name} has no row in {identity_path}")
    present = set(os.listdir(image_directory))
    for name, (number, _) in identities.items():
        for path, rows in ((attribute_path, attributes), (partition_path, partitions)):
            if name not in rows:
                raise ValueError(f"{identity_path}:{number}: {name} has no row in {path}")
        if name not in present:
            raise ValueError(
                f"{identity_path}:{number}: {name} is not in {image_directory} (missing image)"
            )
    names = list(identities)
    return CelebA(
        paths=tuple(str(image_directory / name) for name in names),
        identities=np.array([identities[name][1] for name in names], np.int32),
        attributes=np.stack([attributes[name][1] for name in names]).reshape(
            len(names), len(attribute_names)
        ),
        attribute_names=attribute_names,
        partitions=np.array([partitions[name][1] for name in names], np.int8),
    )


def celeba_partition(celeba, partitions, exclude_identities=()):
    """The images of some partitions as `FaceFiles`, identities relabelled 0..K-1.

    Args:
        celeba: a `CelebA`.
        partitions: names from `PARTITIONS`, e.g. `("train",)`.
        exclude_identities: CelebA identity numbers to leave out.
    """
    unknown = [name for name in partitions if name not in PARTITIONS]
    if unknown:
        raise ValueError(f"`partitions` must be in {PARTITIONS}. Received: partitions={partitions}")
    codes = [PARTITIONS.index(name) for name in partitions]
    keep = np.isin(celeba.partitions, codes) & ~np.isin(celeba.identities, list(exclude_identities))
    indices = np.flatnonzero(keep)
    if len(indices) == 0:
        raise ValueError(f"CelebA has no images in partition(s) {list(partitions)}")
    classes, num_classes = relabel(celeba.identities[indices])
    return FaceFiles(
        paths=tuple(celeba.paths[i] for i in indices),
        identities=classes,
        attributes=celeba.attributes[indices],
        attribute_names=celeba.attribute_names,
        num_classes=num_classes,
    )


def celeba_splits(root, attribute_names=PAPER_ATTRIBUTES):
    """The paper's identity-disjoint protocol: `(train, heldout)` `FaceFiles`.

    `train` is the train partition; `heldout` the test partition without
    any identity that also has train images (CelebA's official partition is
    already identity-disjoint; the check keeps it so for edited lists).
    """
    celeba = read_celeba(root, attribute_names)
    train = celeba_partition(celeba, ("train",))
    train_identities = np.unique(celeba.identities[celeba.partitions == PARTITIONS.index("train")])
    heldout = celeba_partition(celeba, ("test",), exclude_identities=train_identities)
    return train, heldout


class CelebASource:
    """The CelebA face source (`catface_keras.data.registry`): the train partition, the test
    partition's identities held out."""

    def training_faces(self, data, attribute_names):
        return celeba_splits(data.path, attribute_names)

    def default_attributes(self, path):
        return PAPER_ATTRIBUTES

    def conversion_sets(self, path, attributes_csv, attribute_names):
        train, heldout = celeba_splits(path, attribute_names)
        return [("", train), (HELDOUT_DIRECTORY, heldout)]


SOURCE = CelebASource()
