"""CSV manifests: a face dataset listed in one CSV file, `path,identity[,attributes]`.

    faces/manifest.csv          path,identity,Male,Eyeglasses
                                alice/01.jpg,alice,0,1
                                alice/02.jpg,alice,0,
                                photos/bob.png,Bob Smith,1,-1

`path` is relative to the manifest's folder and must stay inside it: an
absolute path, or one whose `..` leaves the folder, is refused. `identity` is
any text; the identities become classes 0..K-1 in sorted text order. Any
other column is an attribute named as in CelebA (`CELEBA_ATTRIBUTES`) with
the project's labels: 1 yes, 0 no, -1 or an empty cell unknown (the SB loss
leaves unknown labels out). A manifest with attribute columns must have one
for every attribute asked for; a manifest without any leaves every attribute
unknown, as an image folder without an attribute CSV does.

The same file trains (`data.source: csv`, `data.path: faces/manifest.csv`),
converts (`catface data convert --source csv --input faces/manifest.csv`) and
evaluates (`catface evaluate --data faces/manifest.csv`). A malformed row
stops the read with the file and line named; an image that does not decode
is skipped and counted when it is read, as with the other readers.
"""

import csv
import os

import numpy as np

from catface_keras.data.decoding import SkippedImages
from catface_keras.data.face_arrays import EvaluationFaces
from catface_keras.data.face_files import FaceFiles, load_face_arrays, relabel
from catface_keras.soft_biometrics import CELEBA_ATTRIBUTES, MISSING_LABEL, PAPER_ATTRIBUTES

PATH_COLUMN, IDENTITY_COLUMN = "path", "identity"
_LABELS = {"1": 1, "0": 0, str(MISSING_LABEL): MISSING_LABEL, "": MISSING_LABEL}


def _open(path):
    try:
        # utf-8-sig: spreadsheets often start the file with a byte-order mark.
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as error:
        raise ValueError(f"Cannot read CSV manifest {path}: {error.strerror}") from error


def _header(path, fields):
    header = [name.strip() for name in fields]
    for column in (PATH_COLUMN, IDENTITY_COLUMN):
        if column not in header:
            raise ValueError(
                f"{path}:1: a CSV manifest's header must have `{PATH_COLUMN}` and "
                f"`{IDENTITY_COLUMN}` columns. Received: {header}"
            )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}:1: column(s) {repeated} appear more than once")
    unknown = [name for name in header
               if name not in (PATH_COLUMN, IDENTITY_COLUMN, *CELEBA_ATTRIBUTES)]
    if unknown:
        raise ValueError(
            f"{path}:1: unknown column(s) {unknown}; besides `{PATH_COLUMN}` and "
            f"`{IDENTITY_COLUMN}` the columns are attributes named as in CelebA: "
            f"{', '.join(CELEBA_ATTRIBUTES)}"
        )
    return header


def manifest_attributes(path):
    """The attribute columns of a manifest's header, in file order (may be empty)."""
    with _open(path) as handle:
        try:
            header = _header(path, next(csv.reader(handle), []))
        except (UnicodeDecodeError, csv.Error):
            raise ValueError(f"{path}:1: a CSV manifest must be UTF-8 CSV text") from None
    return _attribute_columns(header)


def _attribute_columns(header):
    return tuple(name for name in header if name not in (PATH_COLUMN, IDENTITY_COLUMN))


def _image_path(manifest, root, text, line):
    """The file a row names, kept inside `root` (the manifest's folder)."""
    relative = text.replace("\\", "/")
    if os.path.isabs(relative) or (len(relative) > 1 and relative[1] == ":"):
        raise ValueError(
            f"{manifest}:{line}: `{PATH_COLUMN}` must be relative to the manifest's folder "
            f"{root}. Received: {text!r}"
        )
    path = os.path.normpath(os.path.join(root, relative))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(
            f"{manifest}:{line}: `{PATH_COLUMN}` leaves the manifest's folder {root}; images "
            f"must be inside it. Received: {text!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"{manifest}:{line}: no image {path}. Received: {PATH_COLUMN}={text!r}")
    return path


def read_csv_manifest(path, attribute_names=None):
    """Lists the faces of a CSV manifest.

    Args:
        path: the manifest (see the module docstring).
        attribute_names: the attributes to read, in label order (None: the
            manifest's attribute columns).

    Returns:
        A `FaceFiles` in row order; identities are classes 0..K-1 in sorted
        identity order.

    Raises:
        ValueError: naming the file and line, for a header without `path` or
            `identity`, an unknown or repeated column, no column for an
            attribute asked for, a row with the wrong number of fields, an
            empty path or identity, a path outside the manifest's folder or
            naming no file, a path listed twice, a label other than 1, 0, -1
            or empty; or a manifest without rows.
    """
    root = os.path.dirname(os.path.abspath(path))
    paths, identities, labels, lines = [], [], [], {}
    with _open(path) as handle:
        reader = csv.reader(handle)
        try:
            header = _header(path, next(reader, []))
            columns = _attribute_columns(header)
            names = columns if attribute_names is None else tuple(attribute_names)
            missing = [name for name in names if name not in header]
            if columns and missing:
                raise ValueError(
                    f"{path}:1: no column for attribute(s) {missing}. Columns: {header} (add "
                    "them, with empty cells where a label is unknown, or ask for fewer)"
                )
            read = [header.index(name) if name in header else None for name in names]
            path_index, identity_index = header.index(PATH_COLUMN), header.index(IDENTITY_COLUMN)
            for fields in reader:
                line = reader.line_num
                if not any(field.strip() for field in fields):
                    continue
                if len(fields) != len(header):
                    raise ValueError(f"{path}:{line}: expected {len(header)} fields like the "
                                     f"header, found {len(fields)}")
                text, identity = fields[path_index].strip(), fields[identity_index].strip()
                if not text or not identity:
                    raise ValueError(f"{path}:{line}: `{PATH_COLUMN}` and `{IDENTITY_COLUMN}` "
                                     f"must not be empty. Received: {fields}")
                image = _image_path(path, root, text, line)
                if image in lines:
                    raise ValueError(f"{path}:{line}: {text!r} names the image of line "
                                     f"{lines[image]}")
                lines[image] = line
                paths.append(image)
                identities.append(identity)
                labels.append([_label(path, line, name, column, fields)
                               for name, column in zip(names, read)])
        except UnicodeDecodeError:
            raise ValueError(f"{path}: a CSV manifest must be UTF-8 text") from None
        except csv.Error as error:  # e.g. a field longer than csv.field_size_limit()
            raise ValueError(f"{path}:{reader.line_num}: not a readable CSV row: {error}") from None
    if not paths:
        raise ValueError(f"CSV manifest {path} lists no images")
    classes, num_classes = relabel(np.array(identities))
    return FaceFiles(
        paths=tuple(paths),
        identities=classes,
        attributes=np.array(labels, np.int32).reshape(len(paths), len(names)),
        attribute_names=names,
        num_classes=num_classes,
    )


def _label(path, line, name, column, fields):
    """Attribute `name` (field `column`, None: not in the manifest) of a row."""
    if column is None:
        return MISSING_LABEL
    text = fields[column].strip()
    if text not in _LABELS:
        raise ValueError(f"{path}:{line}: `{name}` must be 1, 0, -1 or empty (unknown). "
                         f"Received: {text!r}")
    return _LABELS[text]


def _refuse_attributes_csv(attributes_csv, argument):
    if attributes_csv is not None:
        raise ValueError(f"{argument} is for image_folder and recordio: a CSV manifest holds its "
                         f"own attribute columns. Received: {argument}={attributes_csv}")


class CSVManifestSource:
    """The CSV manifest face source (`catface_keras.data.registry`)."""

    def training_faces(self, data, attribute_names):
        _refuse_attributes_csv(data.attributes_csv, "data.attributes_csv")
        return read_csv_manifest(data.path, attribute_names), None

    def default_attributes(self, path):
        return manifest_attributes(path) or PAPER_ATTRIBUTES

    def conversion_sets(self, path, attributes_csv, attribute_names):
        _refuse_attributes_csv(attributes_csv, "--attributes-csv")
        return [("", read_csv_manifest(path, attribute_names))]

    def evaluation_faces(self, path, image_size, attributes_csv=None, pairs_file=None):
        """Every protocol on the manifest's identities; attributes when it has columns.

        Images are decoded to RGB, centre-cropped square and resized to
        `image_size`; undecodable ones are skipped and counted
        (`info["skipped_images"]`).
        """
        _refuse_attributes_csv(attributes_csv, "--attributes-csv")
        if pairs_file is not None:
            raise ValueError(f"--pairs-file goes with an image folder, not a CSV manifest. "
                             f"Received: --pairs-file={pairs_file}")
        files = read_csv_manifest(path)
        skipped = SkippedImages()
        faces = load_face_arrays(files, image_size, skipped, description="manifest faces")
        return EvaluationFaces(
            images=faces.images,
            identities=faces.identities,
            attributes=faces.attributes if files.attribute_names else None,
            attribute_names=files.attribute_names,
            info={"skipped_images": skipped.count, "skipped_examples": list(skipped.names)},
        )


SOURCE = CSVManifestSource()
