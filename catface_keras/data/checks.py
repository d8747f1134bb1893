"""Checks of the data a configuration names, before any image is read or TensorFlow loads.

`catface_keras.config` calls these on a `DataConfig` (and the model's
attribute names) and reports their `ValueError`s as configuration errors;
each message names the dotted key, its value and what was expected. What a
source can label comes from its entry in `catface_keras.data.registry`.
"""

import json
import os
import pathlib

from catface_keras.choices import IMAGE_SUFFIXES, MIN_VERIFICATION_PAIRS
from catface_keras.data.registry import SOURCES


def pairs_of(count):
    """Genuine pairs among `count` images of one identity."""
    return count * (count - 1) // 2


def check_attribute_names(source, names):
    """`model.attribute_names` is non-empty, without repeats, and labelled by `source`."""
    if not names:
        raise ValueError("`model.attribute_names` must name at least one attribute. Received: []")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"`model.attribute_names` names {repeated} more than once. "
            f"Received: model.attribute_names={names}"
        )
    entry = SOURCES.get(source)
    known = entry.attributes if entry is not None else None
    if known is None:
        return  # read from the source's files (see `check_data_files`)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"`model.attribute_names` has unknown attribute(s) {unknown} for data.source: "
            f"{source}; expected names from: {', '.join(known)}. Received: "
            f"model.attribute_names={names}"
        )


def check_synthetic_sizes(data, batch_size):
    """The built-in faces fill a batch and give enough held-out pairs for TAR at FAR=1e-2."""
    train_images = data.num_train_identities * data.images_per_identity
    if batch_size > train_images:
        raise ValueError(
            f"`train.batch_size` must be at most the {train_images} synthetic training images "
            f"(data.num_train_identities x data.images_per_identity); an epoch needs one "
            f"whole batch. Received: train.batch_size={batch_size}"
        )
    if data.num_test_identities < 2 or data.test_images_per_identity < 2:
        raise ValueError(
            "`data.num_test_identities` and `data.test_images_per_identity` must be at least 2 "
            "(held-out verification needs genuine and impostor pairs). Received: "
            f"data.num_test_identities={data.num_test_identities}, "
            f"data.test_images_per_identity={data.test_images_per_identity}"
        )
    genuine = data.num_test_identities * pairs_of(data.test_images_per_identity)
    if genuine < MIN_VERIFICATION_PAIRS:
        raise ValueError(
            f"`data.num_test_identities` x `data.test_images_per_identity` give {genuine} "
            f"genuine held-out pairs, and as many impostor pairs are drawn; TAR at FAR=1e-2 "
            f"needs at least {MIN_VERIFICATION_PAIRS}. Received: "
            f"data.num_test_identities={data.num_test_identities}, "
            f"data.test_images_per_identity={data.test_images_per_identity}"
        )


def check_heldout_size(data):
    """`data.max_heldout_images` keeps enough images for TAR at FAR=1e-2."""
    if data.max_heldout_images is not None and pairs_of(data.max_heldout_images) < (
        MIN_VERIFICATION_PAIRS
    ):
        raise ValueError(
            "`data.max_heldout_images` keeps too few images for "
            f"{MIN_VERIFICATION_PAIRS} genuine pairs (TAR at FAR=1e-2). Received: "
            f"data.max_heldout_images={data.max_heldout_images}"
        )


def check_data_files(data, attribute_names):
    """Checks, before any work, that the files a `DataConfig` names exist and fit it.

    Optional files (`data.attributes_csv`, `data.heldout_path`, ...) are only checked
    when given. Reads no image: only folder listings and CSV headers.

    Raises:
        ValueError: naming the key and the path.
    """
    entry = SOURCES.get(data.source)
    if entry is None or entry.path is None:
        return
    if not data.path:
        raise ValueError(
            f"`data.path` must name the dataset for data.source: {data.source}. "
            "Received: data.path=None"
        )
    if not pathlib.Path(data.path).exists():
        raise ValueError(
            f"`data.path` does not exist (relative paths start from the config file's "
            f"folder). Received: data.path={data.path!r}"
        )
    for key in ("attributes_csv", "heldout_attributes_csv"):
        value = getattr(data, key)
        if value is not None and not pathlib.Path(value).is_file():
            raise ValueError(
                f"`data.{key}` is not a file (leave the key out or set it to null when there "
                f"is none). Received: data.{key}={value!r}"
            )
    if data.heldout_attributes_csv is not None and data.heldout_path is None:
        raise ValueError(
            "`data.heldout_attributes_csv` is given without data.heldout_path. Received: "
            f"data.heldout_attributes_csv={data.heldout_attributes_csv!r}"
        )
    for key in ("attributes_csv", "heldout_attributes_csv"):
        if getattr(data, key) is not None:
            _check_csv_columns(f"data.{key}", getattr(data, key), attribute_names)
    if data.heldout_path is not None:
        _check_heldout_folder(data)


def _check_csv_columns(key, path, names):
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = [name.strip() for name in handle.readline().split(",")]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"`{key}` cannot be read: {error}. Received: {key}={path!r}") from None
    missing = [name for name in names if name not in header]
    if missing:
        raise ValueError(
            f"`model.attribute_names` has attribute(s) {missing} that `{key}` ({path}) has no "
            f"column for; its columns: {', '.join(header)}. Received: "
            f"model.attribute_names={names}"
        )


def _check_heldout_folder(data):
    root = pathlib.Path(data.heldout_path)
    if not root.is_dir():
        raise ValueError(
            "`data.heldout_path` must be a folder of identity folders. Received: "
            f"data.heldout_path={data.heldout_path!r}"
        )
    counts = []
    for folder in os.scandir(root):
        if folder.is_dir() and not folder.name.startswith("."):
            counts.append(sum(
                1 for entry in os.scandir(folder.path)
                if entry.is_file() and not entry.name.startswith(".")
                and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            ))
    genuine = sum(pairs_of(count) for count in counts)
    if len([count for count in counts if count]) < 2 or genuine < MIN_VERIFICATION_PAIRS:
        raise ValueError(
            f"`data.heldout_path` holds {sum(counts)} images of {len(counts)} identities, "
            f"{genuine} genuine pairs; TAR at FAR=1e-2 needs at least "
            f"{MIN_VERIFICATION_PAIRS} and two identities. Received: "
            f"data.heldout_path={data.heldout_path!r}"
        )


def training_images_at_most(data):
    """An upper bound on the training images, from listings and headers only (None: unknown)."""
    path = pathlib.Path(data.path)
    try:
        if data.source == "tfrecord":
            with open(path / "dataset.json", encoding="utf-8") as handle:
                count = json.load(handle).get("num_examples")
            return count if isinstance(count, int) else None
        if data.source == "celeba":  # one line per image, every partition
            with open(path / "identity_CelebA.txt", "rb") as handle:
                return sum(1 for line in handle if line.strip())
        if data.source == "recordio":
            with open(path.with_suffix(".idx"), "rb") as handle:  # one line per record
                return sum(1 for line in handle if line.strip())
        if data.source == "csv":  # a header, then one row per image
            with open(path, "rb") as handle:
                return max(sum(1 for line in handle if line.strip()) - 1, 0)
        if data.source == "image_folder":
            return sum(
                1
                for folder in os.scandir(path) if folder.is_dir()
                for entry in os.scandir(folder.path)
                if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            )
    except (OSError, ValueError, AttributeError):
        return None  # the reader names what is wrong
    return None


def check_batch_fits(data, batch_size):
    """`train.batch_size` is at most the images the data holds: an epoch needs one batch."""
    if data.source == "synthetic":
        return  # `check_synthetic_sizes`
    count = training_images_at_most(data)
    if count is not None and batch_size > count:
        raise ValueError(
            f"`train.batch_size` is larger than the {count} images {data.path} holds; "
            f"an epoch needs one whole batch. Received: train.batch_size={batch_size}"
        )
