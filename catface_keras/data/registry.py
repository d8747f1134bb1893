"""One registry of face sources: what `data.source`, `catface data convert --source` and
`catface evaluate --data` can name.

Each entry says, without loading TensorFlow, which module holds a source and
what it serves, so that the configuration and the command-line arguments are
checked before TensorFlow loads. The work is done by the module's `SOURCE`
object (a `FaceSource`), imported on first use. A new source is one module
with a `SOURCE` and one line in `SOURCES`.
"""

import dataclasses
import importlib
import pathlib
from typing import Optional, Protocol

from catface_keras.soft_biometrics import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES

TRAIN, CONVERT, EVALUATE = "train", "convert", "evaluate"
# `catface evaluate --data` values that are not paths: the built-in faces.
SYNTHETIC_DATA = "synthetic"
FOLDER = "folder"


@dataclasses.dataclass(frozen=True)
class SourceEntry:
    """Where a face source lives and what it serves, known without loading TensorFlow.

    Attributes:
        module: the module whose `SOURCE` implements `FaceSource`.
        roles: some of `TRAIN`, `CONVERT`, `EVALUATE`.
        path: what `data.path` / `--input` names, for messages and help (None: no path).
        evaluates: the `catface evaluate --data` it reads: `SYNTHETIC_DATA`, `FOLDER`
            or a file suffix (None: not evaluated from a path).
        attributes: the attributes it can label (None: any, read from its files).
        attributes_csv: whether it reads a separate attribute CSV (`--attributes-csv`).
    """

    module: str
    roles: tuple
    path: Optional[str]
    evaluates: Optional[str] = None
    attributes: Optional[tuple] = None
    attributes_csv: bool = False


_ALL = (TRAIN, CONVERT, EVALUATE)
SOURCES = {
    "synthetic": SourceEntry("catface_keras.data.synthetic", (TRAIN, EVALUATE), None,
                             SYNTHETIC_DATA, PAPER_ATTRIBUTES),
    "celeba": SourceEntry("catface_keras.data.celeba", (TRAIN, CONVERT), "a CelebA root",
                          attributes=CELEBA_ATTRIBUTES),
    "recordio": SourceEntry("catface_keras.data.recordio", (TRAIN, CONVERT),
                            "an insightface train.rec (its .idx next to it)", attributes_csv=True),
    "image_folder": SourceEntry("catface_keras.data.image_folder", _ALL,
                                "a folder of identity folders", FOLDER, attributes_csv=True),
    "tfrecord": SourceEntry("catface_keras.data.tfrecord", (TRAIN,),
                            "a folder of `catface data convert` shards"),
    "insightface_bin": SourceEntry("catface_keras.data.insightface_bin", (EVALUATE,),
                                   "an insightface verification .bin file", ".bin"),
    "csv": SourceEntry("catface_keras.data.csv_manifest", _ALL,
                       "a CSV manifest (.csv: path,identity[,attributes])", ".csv"),
}


class FaceSource(Protocol):
    """What a source module's `SOURCE` provides (the methods of its entry's roles).

    `training_faces(data, attribute_names) -> (train, heldout)`: for a
    `DataConfig`, `train` is a random-access source (`len()`, `num_classes`,
    `attribute_names`, `example(i) -> (name, encoded, identity, attributes)`,
    e.g. a `FaceFiles`), a `FaceArrays` in memory or a ready `StreamingFaces`;
    `heldout` is a `FaceFiles`, a `FaceArrays` or None
    (`catface_keras.data.sources.load_training_data` turns them into datasets).

    `default_attributes(path) -> tuple`: the attributes `catface data convert`
    keeps when none are named.

    `conversion_sets(path, attributes_csv, attribute_names) -> [(folder, faces)]`:
    random-access sources to write as TFRecord shards, each into `folder`
    relative to `--out` (`""`: `--out` itself).

    `evaluation_faces(path, image_size, attributes_csv=None, pairs_file=None)
    -> EvaluationFaces`: decoded faces (undecodable ones skipped and counted)
    and optionally the pair list that defines the verification.
    """

    def training_faces(self, data, attribute_names): ...

    def default_attributes(self, path): ...

    def conversion_sets(self, path, attributes_csv, attribute_names): ...

    def evaluation_faces(self, path, image_size, attributes_csv=None, pairs_file=None): ...


def source_names(role):
    """The names of the sources that serve `role`, in registry order."""
    return tuple(name for name, entry in SOURCES.items() if role in entry.roles)


def face_source(name):
    """The `FaceSource` of source `name` (imports its module, which may load TensorFlow)."""
    if name not in SOURCES:
        raise ValueError(f"Unknown face source. Expected one of {tuple(SOURCES)}. "
                         f"Received: source={name!r}")
    return importlib.import_module(SOURCES[name].module).SOURCE


def describe_evaluation_data():
    """What `catface evaluate --data` accepts besides 'synthetic', in words."""
    return ", ".join(SOURCES[name].path for name in source_names(EVALUATE)
                     if SOURCES[name].evaluates != SYNTHETIC_DATA)


def evaluation_source(data):
    """The name of the source that reads `catface evaluate --data data`.

    Raises:
        ValueError: a path that no source evaluates from.
    """
    path = pathlib.Path(data)
    for name in source_names(EVALUATE):
        evaluates = SOURCES[name].evaluates
        if (data == SYNTHETIC_DATA and evaluates == SYNTHETIC_DATA) or (
            evaluates == FOLDER and path.is_dir()
        ) or (evaluates.startswith(".") and path.is_file() and path.suffix.lower() == evaluates):
            return name
    raise ValueError(f"--data {data}: expected '{SYNTHETIC_DATA}', {describe_evaluation_data()}")
