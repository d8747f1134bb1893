"""The training and held-out faces a `DataConfig` names.

`load_training_data(data_config, attribute_names)` returns `(train,
heldout)`: `train` knows its `num_examples` and `num_classes` and builds the
paired HQ/LQ dataset (`paired_dataset(...)`); `heldout` is a `FaceArrays` of
identities not seen in training, or None when the source has none.

`data.source` names a source of `catface_keras.data.registry`, whose
`training_faces` gives either faces in memory (the synthetic faces), a
random-access source (the file readers: read in a stateless permutation) or a
ready stream (TFRecord shards: seeded), and optionally held-out faces
(CelebA's test partition, the shards' `heldout/`).

Every order is a function of `(seed, epoch)`, so a run resumed at epoch e
sees exactly the batches an uninterrupted run would have seen (for
TFRecord: given the same shards and `data.shuffle_buffer`). Random-access
sources read each image where it lies, in a stateless permutation;
TFRecord shards are sequential, so their epoch order is a seeded shard
order plus a stateless shuffle within blocks of `data.shuffle_buffer` images
(an approximate shuffle, reproducible).

Before training starts, the data is checked: TFRecord shards are counted and
their first and last records parsed (`validate_shards`), RecordIO labels are
read from every header, and a sample of images is decoded: when fewer than
`MIN_USABLE_FRACTION` of them decode, training is refused instead of running
on a handful of faces. Images whose header announces more than
`data.max_image_pixels` pixels are skipped without being decoded.
`data.heldout_path` is an image folder of identities that training does not
use (attributes from `data.heldout_attributes_csv`).
"""

import dataclasses
import pathlib
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from catface_keras.data.decoding import (
    ImageDecodeError,
    SkippedImages,
    SkippedImagesLogger,
    decode_elements,
    decode_image,
    set_max_image_pixels,
)
from catface_keras.data.face_arrays import FaceArrays
from catface_keras.data.face_files import load_face_arrays
from catface_keras.data.image_folder import read_image_folder
from catface_keras.data.pairs import paired_dataset, paired_stream
from catface_keras.data.registry import SOURCES, TRAIN, face_source, source_names

# Training is refused when fewer than this fraction of the images decode: every epoch is
# topped up from its own start to its full step count, which needs at least half of them.
MIN_USABLE_FRACTION = 0.5
# Images decoded before training to estimate the usable fraction.
USABLE_SAMPLE = 64


class UnusableDataError(ValueError):
    """Too few of the training images decode to train on."""


@dataclasses.dataclass(frozen=True)
class InMemoryFaces:
    """Training faces held in memory (the synthetic faces)."""

    faces: FaceArrays

    @property
    def num_examples(self):
        return len(self.faces.images)

    @property
    def num_classes(self):
        return int(self.faces.identities.max()) + 1

    @property
    def callbacks(self):
        return []

    @property
    def attribute_labels(self):
        """`(N, A)` attribute labels of the training images."""
        return self.faces.attributes

    def check_usable(self):
        """Drawn faces always decode."""

    def paired_dataset(self, batch_size, degrade_fn, seed=0, start_epoch=0, num_epochs=1):
        """See `catface_keras.data.pairs.paired_dataset`."""
        return paired_dataset(
            self.faces.images,
            self.faces.identities,
            self.faces.attributes,
            batch_size=batch_size,
            degrade_fn=degrade_fn,
            seed=seed,
            start_epoch=start_epoch,
            num_epochs=num_epochs,
        )


@dataclasses.dataclass(frozen=True)
class StreamingFaces:
    """Training faces decoded as they are needed (real datasets).

    Attributes:
        epoch_elements: `fn(epoch_seed) -> dataset of (encoded, name,
            identity, attributes)` in that epoch's order.
        num_examples, num_classes: the images and identities.
        attribute_names: the attribute label order.
        image_size: the side images are decoded to.
        skipped: counts undecodable images (skipped, never fatal).
        attribute_labels: `(N, A)` labels of all images where the source lists them up
            front (None: only the records hold them, as in TFRecord shards).
    """

    epoch_elements: Callable
    num_examples: int
    num_classes: int
    attribute_names: tuple
    image_size: int
    skipped: SkippedImages
    # `fn() -> dataset` like `epoch_elements`, in the cheapest order to sample (None: epoch 0's).
    sample_elements: Optional[Callable] = None
    attribute_labels: Optional[np.ndarray] = None

    @property
    def callbacks(self):
        """Keras callbacks that report skipped images every epoch and stop when too many are."""
        return [SkippedImagesLogger(self.skipped), UsableImagesCheck(self)]

    def minimum_usable(self):
        return max(1, int(np.ceil(MIN_USABLE_FRACTION * self.num_examples)))

    def check_usable(self, sample=USABLE_SAMPLE):
        """Decodes up to `sample` images of the first epoch; raises `UnusableDataError`
        when fewer than `MIN_USABLE_FRACTION` of them decode."""
        if self.sample_elements is not None:
            elements = self.sample_elements().take(sample)
        else:
            elements = self.epoch_elements(tf.constant([0, 0], tf.int64)).take(sample)
        tried, failed = 0, []
        for encoded, name, _, _ in elements.as_numpy_iterator():
            tried += 1
            try:
                decode_image(encoded, self.image_size)
            except ImageDecodeError as error:
                failed.append(f"{name.decode('utf-8', 'replace')} ({error})")
                self.skipped.add(name.decode("utf-8", "replace"), error)
        if tried and tried - len(failed) < MIN_USABLE_FRACTION * tried:
            raise UnusableDataError(
                f"{len(failed)} of the first {tried} training images do not decode (e.g. "
                f"{'; '.join(failed[:3])}); training needs at least "
                f"{MIN_USABLE_FRACTION:.0%} of the {self.num_examples} images to decode. "
                "Fix or remove the broken images."
            )
        self.check_skipped()

    def check_skipped(self):
        """Raises `UnusableDataError` once more images were skipped than the minimum allows."""
        usable = self.num_examples - self.skipped.count
        if usable < self.minimum_usable():
            raise UnusableDataError(
                f"{self.skipped.count} of the {self.num_examples} training images do not "
                f"decode (e.g. {'; '.join(self.skipped.names[:3])}); training needs at least "
                f"{self.minimum_usable()} usable images ({MIN_USABLE_FRACTION:.0%}). "
                "Fix or remove the broken images."
            )

    def faces(self, epoch_seed):
        """One epoch of `(image uint8 (S, S, 3), identity, attributes)`."""
        return decode_elements(self.epoch_elements(epoch_seed), self.image_size, self.skipped)

    def paired_dataset(self, batch_size, degrade_fn, seed=0, start_epoch=0, num_epochs=1):
        """See `catface_keras.data.pairs.paired_stream`."""
        return paired_stream(
            self.faces,
            self.num_examples,
            batch_size=batch_size,
            degrade_fn=degrade_fn,
            seed=seed,
            start_epoch=start_epoch,
            num_epochs=num_epochs,
        )


class UsableImagesCheck(keras.callbacks.Callback):
    """Stops training with `UnusableDataError` when too many images were skipped."""

    def __init__(self, faces):
        super().__init__()
        self.faces = faces

    def on_epoch_end(self, epoch, logs=None):
        self.faces.check_skipped()


def random_access_elements(source, epoch_seed, chunk_size=32):
    """A random-access source's examples in a stateless permutation drawn from `epoch_seed`.

    Args:
        source: `len()`, `attribute_names` and `example(i) -> (name,
            encoded, identity, attributes)`.
        epoch_seed: `[2]` int64.
        chunk_size: examples read per Python call (chunks in parallel).

    Returns:
        A dataset of `(encoded, name, identity int32, attributes int32 (A,))`.
    """
    count = len(source)
    num_attributes = len(source.attribute_names)

    def read_chunk(indices):
        # Object arrays keep trailing NUL bytes, which numpy's bytes dtype would strip.
        encoded = np.empty(len(indices), object)
        names = np.empty(len(indices), object)
        identities = np.empty(len(indices), np.int32)
        attributes = np.empty((len(indices), num_attributes), np.int32)
        for row, index in enumerate(indices):
            name, encoded[row], identities[row], attributes[row] = source.example(int(index))
            names[row] = str(name).encode("utf-8")
        return encoded, names, identities, attributes

    def load(indices):
        encoded, names, identities, attributes = tf.numpy_function(
            read_chunk, [indices], [tf.string, tf.string, tf.int32, tf.int32], stateful=False
        )
        encoded.set_shape((None,))
        names.set_shape((None,))
        identities.set_shape((None,))
        attributes.set_shape((None, num_attributes))
        return encoded, names, identities, attributes

    indices = tf.data.Dataset.range(count)
    if count > 1:
        permutation_seed = tf.random.experimental.stateless_fold_in(epoch_seed, -1)
        indices = indices.map(
            lambda i: tf.random.experimental.index_shuffle(i, permutation_seed, count - 1)
        )
    chunks = indices.batch(chunk_size).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return chunks.unbatch()


def _require_path(data):
    if not data.path:
        raise ValueError(
            f"`data.path` must name the dataset for data.source={data.source!r}. "
            f"Received: data.path={data.path!r}"
        )
    path = pathlib.Path(data.path)
    if not path.exists():
        raise ValueError(f"`data.path` does not exist. Received: data.path={data.path!r}")
    return path


def _training_view(faces, data):
    """A source's training faces as `InMemoryFaces` or `StreamingFaces`."""
    if isinstance(faces, (InMemoryFaces, StreamingFaces)):
        return faces
    if isinstance(faces, FaceArrays):
        return InMemoryFaces(faces)
    return StreamingFaces(
        epoch_elements=lambda epoch_seed: random_access_elements(faces, epoch_seed),
        num_examples=len(faces),
        num_classes=int(faces.num_classes),
        attribute_names=tuple(faces.attribute_names),
        image_size=data.image_size,
        skipped=SkippedImages(),
        attribute_labels=(
            None if getattr(faces, "attributes", None) is None else np.asarray(faces.attributes)
        ),
    )


def _heldout_arrays(files, data):
    """Held-out `FaceFiles` decoded into a `FaceArrays` (arrays are kept as they are)."""
    if files is None or isinstance(files, FaceArrays):
        return files
    return load_face_arrays(files, data.image_size, SkippedImages(), data.max_heldout_images,
                            data.seed, "held-out faces")


def load_training_data(data, attribute_names):
    """`(train, heldout)` for a `DataConfig`, from the source `catface_keras.data.registry` names.

    Args:
        data: a `DataConfig`.
        attribute_names: the attributes the model predicts, in label order.

    Returns:
        `(train, heldout)`: an `InMemoryFaces` or `StreamingFaces`, and a
        `FaceArrays` of held-out identities or None.

    Raises:
        ValueError: an unknown source, a missing `data.path`, or a reader's
            error (the file and line named).
    """
    set_max_image_pixels(getattr(data, "max_image_pixels", None))
    names = source_names(TRAIN)
    if data.source not in names:
        raise ValueError(
            f"`data.source` must be one of {names}. Received: data.source={data.source!r}"
        )
    if SOURCES[data.source].path is not None:
        _require_path(data)
    train, heldout = face_source(data.source).training_faces(data, attribute_names)
    if data.heldout_path:
        heldout = read_image_folder(data.heldout_path, data.heldout_attributes_csv, attribute_names)
    train = _training_view(train, data)
    heldout = _heldout_arrays(heldout, data)
    train.check_usable()
    return train, heldout
