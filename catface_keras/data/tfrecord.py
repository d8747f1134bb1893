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
shards in any order with a modest shuffle buffer mixes well, and splitting
the shards between workers gives each a fair sample.

Example:

>>> from catface_keras.data.image_folder import read_image_folder
>>> write_tfrecord_shards(read_image_folder("faces/"), "shards/", image_size=112)
>>> dataset = read_tfrecord_dataset("shards/")   # (image, identity, attributes)
"""

import concurrent.futures
import json
import math
import os
import pathlib

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from catface_keras.data.decoding import (
    ImageDecodeError,
    SkippedImages,
    decode_elements,
    decode_image,
    square_resize,
)

METADATA_FILE = "dataset.json"
FORMAT = "catface-tfrecord"
FORMAT_VERSION = 1
SHARD_SUFFIX = ".tfrecord"
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
    if out_dir.exists() and holds_shards(out_dir):
        if not overwrite:
            raise FileExistsError(
                f"{out_dir} already holds TFRecord shards; choose another directory or pass "
                "--overwrite to replace them."
            )
        for path in [out_dir / METADATA_FILE, *out_dir.glob(f"*{SHARD_SUFFIX}*")]:
            path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = skipped if skipped is not None else SkippedImages()
    order = np.random.default_rng(_ORDER_SEED).permutation(count)
    bounds = np.linspace(0, count, num_shards + 1).round().astype(int)
    shards = []
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as executor, tqdm(
        total=count, desc=f"writing {out_dir}", unit="image", disable=None
    ) as progress:
        for shard in range(num_shards):
            name = _shard_name(shard, num_shards)
            written = 0
            with tf.io.TFRecordWriter(str(out_dir / (name + ".partial"))) as writer:
                for start in range(bounds[shard], bounds[shard + 1], _WRITE_BATCH):
                    indices = order[start : min(start + _WRITE_BATCH, bounds[shard + 1])]
                    prepared = executor.map(lambda i: _prepare(source, int(i), image_size), indices)
                    for image_name, *fields, error in prepared:
                        if error is not None:
                            skipped.add(image_name, error)
                            continue
                        writer.write(_example(image_name, *fields))
                        written += 1
                    progress.update(len(indices))
            shards.append({"file": name, "num_examples": written})
    for shard in shards:
        os.replace(out_dir / (shard["file"] + ".partial"), out_dir / shard["file"])
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "num_examples": sum(shard["num_examples"] for shard in shards),
        "num_classes": int(source.num_classes),
        "attribute_names": list(source.attribute_names),
        "image_size": image_size,
        "shards": shards,
        "skipped": {"count": skipped.count, "examples": list(skipped.names)},
    }
    temporary = out_dir / (METADATA_FILE + ".partial")
    temporary.write_text(json.dumps(metadata, indent=2) + "\n")
    os.replace(temporary, out_dir / METADATA_FILE)
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
    for shard in metadata["shards"]:
        if not (pathlib.Path(directory) / shard["file"]).exists():
            raise ValueError(f"{path}: lists shard {shard['file']}, which is missing")
    return metadata


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
        epoch_seed: `[2]` int64 seed: shard order and a `shuffle_buffer`
            shuffle are drawn from it (the same seed, the same order); None
            reads in file order.
        shuffle_buffer: examples in the shuffle buffer (0: no shuffle).
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
        shuffle_seed = tf.random.stateless_uniform(
            [], tf.random.experimental.stateless_fold_in(epoch_seed, -3), 0, tf.int64.max, tf.int64
        )
        elements = elements.shuffle(shuffle_buffer, seed=shuffle_seed)
    return elements


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
