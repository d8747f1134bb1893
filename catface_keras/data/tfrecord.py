"""TFRecord shards: any face source converted once, then streamed by `tf.data`.

A converted dataset is a directory:

    dataset.json                          count, classes, attribute names, image size, shards
    shard-00000-of-00016.tfrecord ...     one `tf.train.Example` per image

Each example holds `image/encoded` (the source's own bytes when the image
needed no crop or resize, otherwise lossless PNG), `image/height` and
`image/width` (the decoded size), `image/name` (where the image came from),
`identity` (class index) and `attributes` (`A` ints in {-1, 0, 1}).
Images are written in an order drawn from a fixed seed and cut into
contiguous shards, so every shard is a mix of all identities: reading
shards in any order with a modest block shuffle mixes well, and splitting
the shards between workers gives each a fair sample.

Example:

>>> from catface_keras.data.image_folder import read_image_folder
>>> write_tfrecord_shards(read_image_folder("faces/"), "shards/", image_size=112)
>>> dataset = read_tfrecord_dataset("shards/")   # (image, identity, attributes)
"""

import bisect
import concurrent.futures
import errno
import json
import math
import os
import pathlib
import re
import struct

import cv2
import numpy as np
import tensorflow as tf

from catface_keras.atomic_files import replacing_directory, require_directory_path
from catface_keras.progress import progress
from catface_keras.data.decoding import (
    ImageDecodeError,
    SkippedImages,
    decode_elements,
    decode_image,
)
from catface_keras.data.face_arrays import FaceArrays
from catface_keras.data.face_files import whole_identities
from catface_keras.data.resizing import square_resize
from catface_keras.data.sources import StreamingFaces

METADATA_FILE = "dataset.json"
FORMAT = "catface-tfrecord"
FORMAT_VERSION = 1
SHARD_SUFFIX = ".tfrecord"
# Held-out identities converted with the training set live in this sub-folder of the shards.
HELDOUT_DIRECTORY = "heldout"
# The default shard count: about this many images per shard (~40 MB at 112 px JPEG).
IMAGES_PER_SHARD = 5000
_WRITE_BATCH = 256
_ORDER_SEED = 0


def _shard_name(index, count):
    return f"shard-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def holds_shards(directory):
    """Whether `directory` holds shards or their metadata (even half-written ones)."""
    directory = pathlib.Path(directory)
    return (directory / METADATA_FILE).exists() or any(directory.glob(f"*{SHARD_SUFFIX}*"))


def _prepare(source, index, image_size):
    """`(name, stored bytes or None, height, width, identity, attributes, error)`."""
    name, encoded, identity, attributes = source.example(index)
    try:
        image = decode_image(encoded)
    except ImageDecodeError as error:
        return name, None, 0, 0, identity, attributes, error
    if image_size is not None and image.shape[:2] != (image_size, image_size):
        image = square_resize(image, image_size)
        # cv2 writes BGR: convert so that the PNG holds the true colours.
        encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
    return name, bytes(encoded), image.shape[0], image.shape[1], identity, attributes, None


def _example(name, encoded, height, width, identity, attributes):
    def int64s(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def byte_string(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    features = {
        "image/encoded": byte_string(encoded),
        "image/height": int64s([height]),
        "image/width": int64s([width]),
        "image/name": byte_string(str(name).encode("utf-8")),
        "identity": int64s([identity]),
        "attributes": int64s([int(value) for value in attributes]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_tfrecord_shards(
    source, out_dir, num_shards=None, image_size=None, overwrite=False, skipped=None, workers=None
):
    """Converts a random-access face source into TFRecord shards.

    Every image is decoded once (in parallel threads) to check it; one that
    does not decode is left out and counted. With `image_size`, images are
    centre-cropped square and resized, and stored as PNG.

    Args:
        source: a random-access face source (`FaceFiles`, `InsightFaceRecords`):
            `len()`, `example(i) -> (name, encoded, identity, attributes)`,
            `num_classes`, `attribute_names`.
        out_dir: the output directory (created if needed).
        num_shards: the number of shards (default: one per `IMAGES_PER_SHARD`
            images); use at least as many as training workers.
        image_size: store images at this side, or None for their own size.
        overwrite: replace shards already in `out_dir`; without it a
            directory that holds shards is refused.
        skipped: a `SkippedImages` to count undecodable images in.
        workers: decoding threads (default: the CPU count).

    Returns:
        The metadata written to `dataset.json` (a dict).
    """
    out_dir = pathlib.Path(out_dir)
    count = len(source)
    if count == 0:
        raise ValueError("`source` holds no images: there is nothing to convert.")
    if num_shards is None:
        num_shards = max(1, math.ceil(count / IMAGES_PER_SHARD))
    if not isinstance(num_shards, int) or not 1 <= num_shards <= count:
        raise ValueError(
            f"`num_shards` must be an integer in [1, {count}] (the image count). "
            f"Received: num_shards={num_shards!r}"
        )
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(
            f"`image_size` must be a positive integer. Received: image_size={image_size!r}"
        )
    require_directory_path(out_dir, "out_dir")
    if out_dir.exists() and holds_shards(out_dir) and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds TFRecord shards; choose another directory or pass "
            "--overwrite to replace them."
        )
    skipped = skipped if skipped is not None else SkippedImages()
    # Built in a hidden sibling and swapped in once complete: the old set stays readable
    # until then, and a failure leaves it as it was.
    with replacing_directory(out_dir, keep=lambda name: not _belongs_to_set(name)) as scratch:
        metadata = _write_set(
            source, scratch, out_dir, num_shards, image_size, skipped, workers or os.cpu_count()
        )
    return metadata


def _belongs_to_set(name):
    return name.startswith(METADATA_FILE) or SHARD_SUFFIX in name


def _write_set(source, directory, out_dir, num_shards, image_size, skipped, workers):
    count = len(source)
    order = np.random.default_rng(_ORDER_SEED).permutation(count)
    bounds = np.linspace(0, count, num_shards + 1).round().astype(int)
    shards = []
    with concurrent.futures.ThreadPoolExecutor(workers) as executor, progress(
        count, f"writing {out_dir}"
    ) as bar:
        for shard in range(num_shards):
            name = _shard_name(shard, num_shards)
            written = 0
            try:
                with tf.io.TFRecordWriter(str(directory / name)) as writer:
                    for start in range(bounds[shard], bounds[shard + 1], _WRITE_BATCH):
                        indices = order[start : min(start + _WRITE_BATCH, bounds[shard + 1])]
                        prepared = executor.map(
                            lambda i: _prepare(source, int(i), image_size), indices
                        )
                        for image_name, *fields, error in prepared:
                            if error is not None:
                                skipped.add(image_name, error)
                                continue
                            writer.write(_example(image_name, *fields))
                            written += 1
                        bar.update(len(indices))
            except tf.errors.OpError as error:
                code = errno.ENOSPC if "space left" in error.message else errno.EIO
                raise OSError(code, error.message, str(out_dir / name)) from None
            shards.append({"file": name, "num_examples": written})
    total = sum(shard["num_examples"] for shard in shards)
    if total == 0:
        raise ValueError(
            f"None of the {count} images decodes ({skipped.count} skipped, e.g. "
            f"{'; '.join(skipped.names[:3])}); nothing was written to {out_dir}."
        )
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "num_examples": total,
        "num_classes": int(source.num_classes),
        "attribute_names": list(source.attribute_names),
        "image_size": image_size,
        "shards": shards,
        "skipped": {"count": skipped.count, "examples": list(skipped.names)},
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def read_metadata(directory):
    """The `dataset.json` of a shard directory, checked against its shard files."""
    path = pathlib.Path(directory) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(
            f"Cannot read {path}: {error.strerror} (is {directory} a directory written by "
            "`catface data convert`?)"
        ) from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} metadata file")
    for key in ("num_examples", "num_classes", "attribute_names", "shards"):
        if key not in metadata:
            raise ValueError(f"{path}: no `{key}` entry")
    _check_metadata(path, metadata)
    for shard in metadata["shards"]:
        if not (pathlib.Path(directory) / shard["file"]).exists():
            raise ValueError(f"{path}: lists shard {shard['file']}, which is missing")
    return metadata


def _is_count(value, minimum=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_metadata(path, metadata):
    """Types and sums of `dataset.json`, and shard names that stay inside its directory."""
    names = metadata["attribute_names"]
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"{path}: `attribute_names` must be a list of names. Received: {names!r}")
    if not _is_count(metadata["num_classes"], 1):
        raise ValueError(
            f"{path}: `num_classes` must be a positive integer. "
            f"Received: num_classes={metadata['num_classes']!r}"
        )
    shards = metadata["shards"]
    if not isinstance(shards, list) or not shards:
        raise ValueError(f"{path}: `shards` must be a non-empty list. Received: {shards!r}")
    for index, shard in enumerate(shards):
        if not isinstance(shard, dict) or not isinstance(shard.get("file"), str):
            raise ValueError(f"{path}: shard {index} must be {{'file': NAME, 'num_examples': N}}")
        name = shard["file"]
        # A plain file name: no directory part, so nothing outside the folder is opened.
        if name in ("", ".", "..") or pathlib.PurePath(name).name != name or "\\" in name:
            raise ValueError(
                f"{path}: shard {index} names {name!r}; a shard must be a file name inside "
                f"{path.parent} (no directories, no '..'). Refused."
            )
        if not _is_count(shard.get("num_examples")):
            raise ValueError(
                f"{path}: shard {name} needs a non-negative integer `num_examples`. "
                f"Received: {shard.get('num_examples')!r}"
            )
    total = sum(shard["num_examples"] for shard in shards)
    if not _is_count(metadata["num_examples"], 1) or metadata["num_examples"] != total:
        raise ValueError(
            f"{path}: `num_examples` is {metadata['num_examples']!r}, but the shards list "
            f"{total} examples"
        )


_RECORD_PREFIX = struct.Struct("<QI")  # length, masked CRC of the length


def _record_offsets(path):
    """Byte offsets of the records of a TFRecord file; raises naming a truncated record."""
    offsets = []
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        position = 0
        while position < size:
            handle.seek(position)
            prefix = handle.read(_RECORD_PREFIX.size)
            length = _RECORD_PREFIX.unpack(prefix)[0] if len(prefix) == _RECORD_PREFIX.size else 0
            end = position + _RECORD_PREFIX.size + length + 4
            if len(prefix) < _RECORD_PREFIX.size or end > size:
                raise ValueError(
                    f"{path}: record {len(offsets)} (at byte {position}) is truncated: the "
                    f"file ends at byte {size}. Convert the dataset again."
                )
            offsets.append(position)
            position = end
    return offsets


def _read_record(path, offset):
    with open(path, "rb") as handle:
        handle.seek(offset)
        (length,) = struct.unpack("<Q", handle.read(8))
        handle.seek(offset + _RECORD_PREFIX.size)
        return handle.read(length)


def _check_example(path, index, serialized, num_classes, num_attributes):
    where = f"{path}: record {index}"
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # protobuf raises its own DecodeError
        raise ValueError(f"{where} is not a tf.train.Example (corrupt shard)") from None
    feature = example.features.feature

    def ints(key):
        if key not in feature:
            raise ValueError(f"{where} has no `{key}` feature")
        return list(feature[key].int64_list.value)

    if "image/encoded" not in feature or len(feature["image/encoded"].bytes_list.value) != 1:
        raise ValueError(f"{where} has no `image/encoded` image")
    identity = ints("identity")
    if len(identity) != 1 or not 0 <= identity[0] < num_classes:
        raise ValueError(
            f"{where} has identity {identity}, outside the {num_classes} classes of "
            f"{METADATA_FILE}"
        )
    attributes = ints("attributes")
    if len(attributes) != num_attributes:
        raise ValueError(
            f"{where} has {len(attributes)} attribute values, but {METADATA_FILE} names "
            f"{num_attributes} attributes"
        )
    if any(value not in (-1, 0, 1) for value in attributes):
        raise ValueError(f"{where} has attribute values {attributes}; expected 1, 0 or -1")


# Records parsed per call while validating (the parse runs in TensorFlow's C++).
_CHECK_BATCH = 1024


def validate_shards(directory, metadata=None):
    """Checks a shard directory before training reads it, naming the file and record.

    Every shard's records are counted from their length prefixes (a truncated shard or a
    count other than `dataset.json`'s is an error), then every record is read once:
    its checksums verified, and its identity (in range), attributes (one value in
    {-1, 0, 1} per attribute) and image feature checked. The reading and parsing run in
    TensorFlow's C++ reader, a batch of records per Python call: about the time it takes
    to read the shards from disk.

    Returns:
        The metadata.
    """
    metadata = metadata or read_metadata(directory)
    num_classes = metadata["num_classes"]
    num_attributes = len(metadata["attribute_names"])
    for shard in metadata["shards"]:
        path = pathlib.Path(directory) / shard["file"]
        offsets = _record_offsets(path)
        if len(offsets) != shard["num_examples"]:
            raise ValueError(
                f"{path} holds {len(offsets)} records, but {METADATA_FILE} lists "
                f"{shard['num_examples']}. Convert the dataset again."
            )
        _check_records(path, offsets, num_classes, num_attributes)
    return metadata


def _check_records(path, offsets, num_classes, num_attributes):
    """Reads every record of one shard (see `validate_shards`); raises naming the record."""
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "identity": tf.io.FixedLenFeature([], tf.int64),
        "attributes": tf.io.FixedLenFeature([num_attributes], tf.int64),
    }
    records = iter(tf.data.TFRecordDataset(str(path)).batch(_CHECK_BATCH))
    start = 0
    while True:
        try:
            batch = next(records)
        except StopIteration:
            return
        except tf.errors.DataLossError as error:
            raise ValueError(_describe_corrupt_record(path, offsets, error.message)) from None
        try:
            parsed = tf.io.parse_example(batch, spec)
        except tf.errors.InvalidArgumentError:
            # Find the record and say what is wrong with it.
            for row, serialized in enumerate(batch.numpy()):
                _check_example(path, start + row, serialized, num_classes, num_attributes)
            raise ValueError(f"{path}: records {start}..{start + len(batch) - 1} do not parse")
        identities = parsed["identity"].numpy()
        attributes = parsed["attributes"].numpy().reshape(len(identities), num_attributes)
        bad = (identities < 0) | (identities >= num_classes)
        bad |= ~np.isin(attributes, (-1, 0, 1)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            _check_example(path, start + row, batch[row].numpy(), num_classes, num_attributes)
        start += len(identities)


def _describe_corrupt_record(path, offsets, message):
    """TensorFlow names a corrupt record by its byte offset only: name the file and record."""
    found = re.search(r"corrupted record at (\d+)", message)
    if found is None:
        return f"{path} is corrupt ({message}). Convert the dataset again."
    record = max(bisect.bisect_right(offsets, int(found.group(1))) - 1, 0)
    return (
        f"{path}: record {record} (at byte {offsets[record]}) fails its checksum; the shard is "
        "corrupt. Convert the dataset again."
    )


def _shard_files(directory, metadata, worker_index, num_workers):
    files = [str(pathlib.Path(directory) / shard["file"]) for shard in metadata["shards"]]
    if not isinstance(num_workers, int) or num_workers < 1 or not 0 <= worker_index < num_workers:
        raise ValueError(
            "`worker_index` must be in [0, num_workers). "
            f"Received: worker_index={worker_index}, num_workers={num_workers}"
        )
    if num_workers > len(files):
        raise ValueError(
            f"{directory} has {len(files)} shard(s), fewer than the {num_workers} workers; "
            "convert again with --shards of at least the number of workers. "
            f"Received: num_workers={num_workers}"
        )
    return files[worker_index::num_workers]


def _parse(serialized, num_attributes):
    features = tf.io.parse_single_example(
        serialized,
        {
            "image/encoded": tf.io.FixedLenFeature([], tf.string),
            "image/name": tf.io.FixedLenFeature([], tf.string),
            "identity": tf.io.FixedLenFeature([], tf.int64),
            "attributes": tf.io.FixedLenFeature([num_attributes], tf.int64),
        },
    )
    return (
        features["image/encoded"],
        features["image/name"],
        tf.cast(features["identity"], tf.int32),
        tf.cast(features["attributes"], tf.int32),
    )


def tfrecord_elements(
    directory, worker_index=0, num_workers=1, epoch_seed=None, shuffle_buffer=0, metadata=None
):
    """The encoded examples of one worker's shards.

    Worker `w` of `n` reads shards `w, w + n, w + 2n, ...`: the workers'
    shares are disjoint and together complete.

    Args:
        directory: a shard directory.
        worker_index, num_workers: this worker and the number of workers.
        epoch_seed: `[2]` int64 seed: shard order and the block shuffle
            are drawn from it alone (the same seed, the same order, whatever
            the global seed); None reads in file order.
        shuffle_buffer: examples per shuffled block (0: no shuffle).
        metadata: `read_metadata(directory)`, if already read.

    Returns:
        A dataset of `(encoded tf.string, name tf.string, identity int32,
        attributes int32 (A,))`.
    """
    metadata = metadata or read_metadata(directory)
    files = _shard_files(directory, metadata, worker_index, num_workers)
    file_names = tf.data.Dataset.from_tensor_slices(files)
    if epoch_seed is not None and len(files) > 1:
        order_seed = tf.random.experimental.stateless_fold_in(epoch_seed, -2)
        file_names = tf.data.Dataset.range(len(files)).map(
            lambda i: tf.gather(
                files, tf.random.experimental.index_shuffle(i, order_seed, len(files) - 1)
            )
        )
    records = file_names.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 4),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    num_attributes = len(metadata["attribute_names"])
    elements = records.map(
        lambda record: _parse(record, num_attributes), num_parallel_calls=tf.data.AUTOTUNE
    )
    if epoch_seed is not None and shuffle_buffer > 0:
        elements = _stateless_block_shuffle(
            elements, shuffle_buffer, tf.random.experimental.stateless_fold_in(epoch_seed, -3)
        )
    return elements


def _stateless_block_shuffle(elements, block_size, seed):
    """Permutes each run of `block_size` elements by a permutation drawn from `(seed, run)`.

    A function of the seed alone: `Dataset.shuffle` would also mix in the global seed (and,
    given a tensor seed while the global seed is 0, fails to build).
    """

    def permute(index, block):
        scores = tf.random.stateless_uniform(
            tf.shape(block[0])[:1], tf.random.experimental.stateless_fold_in(seed, index)
        )
        order = tf.argsort(scores)
        return tuple(tf.gather(field, order) for field in block)

    blocks = elements.batch(block_size).enumerate()
    return blocks.map(permute).unbatch()


def read_tfrecord_dataset(directory, image_size=None, worker_index=0, num_workers=1, skipped=None):
    """Reads shards back as decoded faces, in file order.

    Args:
        directory: a shard directory.
        image_size: resize to this side (default: the size the shards were
            written at; required when they were written at the images' own sizes).
        worker_index, num_workers: read one worker's share (see `tfrecord_elements`).
        skipped: a `SkippedImages` counting images that fail to decode.

    Returns:
        A dataset of `(image uint8 (H, W, 3) RGB, identity int32, attributes int32 (A,))`.
    """
    metadata = read_metadata(directory)
    image_size = image_size or metadata.get("image_size")
    if image_size is None:
        raise ValueError(
            f"{directory} was written at the images' own sizes: pass `image_size`. "
            "Received: image_size=None"
        )
    elements = tfrecord_elements(directory, worker_index, num_workers, metadata=metadata)
    skipped = skipped if skipped is not None else SkippedImages()
    return decode_elements(elements, image_size, skipped)


def _heldout_faces(path, data, attribute_names):
    """Held-out faces converted next to training shards, as arrays."""
    metadata = validate_shards(path)
    dataset = decode_elements(
        tfrecord_elements(path, metadata=metadata), data.image_size, SkippedImages()
    )
    images, identities, attributes = [], [], []
    for image, identity, attribute in dataset.batch(256):
        images.append(image.numpy())
        identities.append(identity.numpy())
        attributes.append(attribute.numpy())
    identities = np.concatenate(identities)
    kept = whole_identities(identities, data.max_heldout_images, data.seed)
    return FaceArrays(
        np.concatenate(images)[kept],
        identities[kept],
        np.concatenate(attributes)[kept],
        tuple(attribute_names),
    )


class TFRecordSource:
    """The TFRecord shard face source (`catface_keras.data.registry`): what
    `catface data convert` writes; `<path>/heldout` holds held-out identities."""

    def training_faces(self, data, attribute_names):
        path = pathlib.Path(data.path)
        metadata = validate_shards(path, read_metadata(path))
        if tuple(metadata["attribute_names"]) != tuple(attribute_names):
            raise ValueError(
                f"{path / METADATA_FILE} holds attributes {metadata['attribute_names']}, but the "
                f"model predicts {list(attribute_names)}: set model.attribute_names to match"
            )
        train = StreamingFaces(
            epoch_elements=lambda epoch_seed: tfrecord_elements(
                path, epoch_seed=epoch_seed, shuffle_buffer=data.shuffle_buffer, metadata=metadata
            ),
            num_examples=int(metadata["num_examples"]),
            num_classes=int(metadata["num_classes"]),
            attribute_names=tuple(attribute_names),
            image_size=data.image_size,
            skipped=SkippedImages(),
            # File order: the shuffled order would read a whole shuffle block first.
            sample_elements=lambda: tfrecord_elements(path, metadata=metadata),
        )
        heldout = None
        # Decoded here, so only when data.heldout_path does not replace them.
        if (path / HELDOUT_DIRECTORY / METADATA_FILE).exists() and not data.heldout_path:
            heldout = _heldout_faces(path / HELDOUT_DIRECTORY, data, attribute_names)
        return train, heldout


SOURCE = TFRecordSource()
