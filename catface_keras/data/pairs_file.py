"""Verification pair lists: LFW's `pairs.txt` and plain `path1 path2 label [fold]` lists.

LFW `pairs.txt` (and the same layout for other sets):

    10	300                    header: folds, then pairs of each kind per fold
    Abel_Pacheco	1	4        same person: name, image numbers
    Abdel_Madi_Shabneh	1	Dean_Barker	1    different people

Image `n` of `name` is `<root>/name/name_000n.jpg` (any image suffix is
accepted when the `.jpg` is absent). With a two-number header `F N` the file
must hold `F * 2N` pairs, and fold `k` is pairs `[2Nk, 2N(k+1))`, LFW's ten
sets; a one-number header is skipped. A plain list has one pair per line,
`path1 path2 label` with label 1 (same) or 0 (different) and paths relative to
the root, optionally a fourth column with the pair's fold (an int). Blank lines
and lines starting with `#` are skipped; columns are split on whitespace.
`read_pair_faces` decodes the images a list names for `catface evaluate`.
"""

import dataclasses
import pathlib

import numpy as np

from catface_keras.choices import IMAGE_SUFFIXES
from catface_keras.data.decoding import ImageDecodeError, SkippedImages, decode_image
from catface_keras.data.face_arrays import EvaluationFaces, FacePairs
from catface_keras.progress import track


@dataclasses.dataclass(frozen=True)
class PairsFile:
    """Pairs read from a list: `first`, `second` `(P,)` paths, `same` `(P,)` bools, and
    `folds` `(P,)` ints (None: contiguous folds)."""

    first: tuple
    second: tuple
    same: np.ndarray
    folds: np.ndarray = None


def _is_int(text):
    return text.lstrip("-").isdigit()


# Contiguous folds of a list without its own (LFW's ten sets).
DEFAULT_NUM_FOLDS = 10


def _lfw_image(root, name, number, where):
    if name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(
            f"{where}: {name!r} is not a person's name (no '/', no '..'): an LFW-style name is "
            f"a folder directly inside the data root {root}. Refused."
        )
    stem = f"{name}_{int(number):04d}"
    path = root / name / f"{stem}.jpg"
    if path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        other = root / name / f"{stem}{suffix}"
        if other.is_file():
            return other
    raise ValueError(f"{where}: no image {root / name / stem}.jpg (or another image suffix)")


def _plain_image(root, text, where):
    relative = pathlib.PurePosixPath(text.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or pathlib.PureWindowsPath(text).drive:
        # As shard names in dataset.json: nothing outside the data root is opened.
        raise ValueError(
            f"{where}: {text} is not inside the data root {root} (an absolute path or '..'); "
            "pair paths are relative to --data. Refused."
        )
    path = root / relative
    if not path.is_file():
        raise ValueError(f"{where}: {path} is not a file (paths are relative to {root})")
    return path


def read_pairs_file(path, root):
    """Reads an LFW `pairs.txt` or a plain pair list (see the module docstring).

    Args:
        path: the list file.
        root: the folder its image names are relative to.

    Returns:
        A `PairsFile` of absolute image paths.

    Raises:
        ValueError: a line of another form, a label other than 0 or 1, a
            missing image, a header that does not match the pair count
            (the file and line are named).
    """
    path, root = pathlib.Path(path), pathlib.Path(root)
    if not path.is_file():
        raise ValueError(f"--pairs-file {path} is not a file")
    first, second, same, folds, header = [], [], [], [], None
    labels = {}  # pair -> (label, line), to catch a pair listed with both labels
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        where = f"{path}, line {number}"
        if not fields or fields[0].startswith("#"):
            continue
        if not first and header is None and all(_is_int(field) for field in fields):
            if len(fields) > 2:
                raise ValueError(f"{where}: a header holds one or two numbers. Received: {line!r}")
            header = [int(field) for field in fields]
            continue
        if len(fields) == 3 and _is_int(fields[1]) and _is_int(fields[2]):
            pair = (_lfw_image(root, fields[0], fields[1], where),
                    _lfw_image(root, fields[0], fields[2], where), True, None)
        elif len(fields) == 4 and _is_int(fields[1]) and _is_int(fields[3]):
            pair = (_lfw_image(root, fields[0], fields[1], where),
                    _lfw_image(root, fields[2], fields[3], where), False, None)
        elif len(fields) in (3, 4):
            if fields[2] not in ("0", "1") or (len(fields) == 4 and not _is_int(fields[3])):
                raise ValueError(f"{where}: expected 'path1 path2 label [fold]' with label 0 or "
                                 f"1 and an int fold. Received: {line!r}")
            fold = int(fields[3]) if len(fields) == 4 else None
            pair = (_plain_image(root, fields[0], where), _plain_image(root, fields[1], where),
                    fields[2] == "1", fold)
        else:
            raise ValueError(f"{where}: expected 'name n1 n2', 'name1 n1 name2 n2' or "
                             f"'path1 path2 label [fold]'. Received: {line!r}")
        key = frozenset((str(pair[0]), str(pair[1])))
        if key in labels and labels[key][0] != pair[2]:
            raise ValueError(
                f"{where}: this pair is also on line {labels[key][1]} with the opposite label "
                f"({'same' if pair[2] else 'different'} here, "
                f"{'same' if labels[key][0] else 'different'} there). Refused: one of them is "
                "wrong."
            )
        labels.setdefault(key, (pair[2], number))
        first.append(str(pair[0]))
        second.append(str(pair[1]))
        same.append(pair[2])
        folds.append(pair[3])
    if not first:
        raise ValueError(f"--pairs-file {path} holds no pairs")
    given = [fold is not None for fold in folds]
    if any(given) and not all(given):
        raise ValueError(f"{path}: give a fold on every line or on none "
                         f"({sum(given)} of {len(given)} lines have one)")
    folds = np.array(folds, np.int64) if all(given) else None
    if header is not None and len(header) == 2:
        num_folds, per_fold = header
        if num_folds * 2 * per_fold != len(first):
            raise ValueError(f"{path}: the header says {num_folds} folds of {per_fold} same and "
                             f"{per_fold} different pairs, the file holds {len(first)} pairs")
        if folds is None:
            folds = np.repeat(np.arange(num_folds), 2 * per_fold)
    return PairsFile(tuple(first), tuple(second), np.array(same, bool), folds)


def read_pair_faces(root, pairs_file, image_size):
    """The images a pair list names (`read_pairs_file`), for verification only.

    Each distinct image is decoded once (RGB, centre-cropped square, resized
    to `image_size`); a pair with an undecodable image is left out and
    counted (`info["skipped_images"]`, `info["skipped_pairs"]`).

    Returns:
        An `EvaluationFaces` with `pairs` over the decoded images.
    """
    pairs = read_pairs_file(pairs_file, root)
    check_folds(pairs.same, pairs.folds, str(pairs_file))  # before decoding anything
    paths = sorted(set(pairs.first) | set(pairs.second))
    row = {path: index for index, path in enumerate(paths)}
    images = np.zeros((len(paths), image_size, image_size, 3), np.uint8)
    decoded = np.zeros(len(paths), bool)
    skipped = SkippedImages()
    for index, path in track(enumerate(paths), len(paths), "decoding pair images"):
        try:
            images[index] = decode_image(pathlib.Path(path).read_bytes(), image_size)
            decoded[index] = True
        except ImageDecodeError as error:
            skipped.add(path, error)
    first = np.array([row[path] for path in pairs.first])
    second = np.array([row[path] for path in pairs.second])
    kept = decoded[first] & decoded[second]
    # Rows renumbered over the decoded images only.
    new_row = np.cumsum(decoded) - 1
    folds = None if pairs.folds is None else pairs.folds[kept]
    if not kept.all():
        check_folds(pairs.same[kept], folds,
                    f"{pairs_file} (after leaving out {int((~kept).sum())} pair(s) with an "
                    "undecodable image)")
    info = {
        "num_images": int(decoded.sum()),
        "num_pairs": int(kept.sum()),
        "pairs_file": str(pairs_file),
        "folds": "from the pairs file" if folds is not None else "10 contiguous folds",
        "skipped_images": skipped.count,
        "skipped_examples": list(skipped.names),
        "skipped_pairs": int((~kept).sum()),
    }
    pair_rows = FacePairs(new_row[first[kept]], new_row[second[kept]], pairs.same[kept], folds)
    return EvaluationFaces(images=images[decoded], pairs=pair_rows, info=info)


def check_folds(same, folds, where):
    """Refuses pairs that k-fold cross-validation cannot score meaningfully.

    Each fold's threshold is chosen on the other folds, so there must be at least two
    folds (`DEFAULT_NUM_FOLDS` pairs when the list gives none) and the other folds must
    hold both same and different pairs; otherwise the accuracy would be a number
    (0.5 at threshold 0) that measures nothing.

    Args:
        same: `(P,)` bools.
        folds: `(P,)` fold labels, or None for `DEFAULT_NUM_FOLDS` contiguous folds.
        where: named in the error (the pair list).
    """
    same = np.asarray(same, bool)
    if folds is None:
        if len(same) < DEFAULT_NUM_FOLDS:
            raise ValueError(
                f"{where}: {len(same)} pair(s); {DEFAULT_NUM_FOLDS}-fold cross-validation needs "
                f"at least {DEFAULT_NUM_FOLDS} (give more pairs, or a fold column)"
            )
        # The folds `verification.fold_indices` cuts (`np.array_split`).
        parts = np.array_split(np.arange(len(same)), DEFAULT_NUM_FOLDS)
        folds = np.repeat(np.arange(DEFAULT_NUM_FOLDS), [len(part) for part in parts])
    labels = np.unique(folds)
    if len(labels) < 2:
        raise ValueError(
            f"{where}: every pair is in fold {labels[0]}; cross-validation picks each fold's "
            "threshold on the other folds and needs at least 2 folds"
        )
    for label in labels:
        rest = same[folds != label]
        if rest.all() or not rest.any():
            kind = "different-person" if rest.all() else "same-person"
            raise ValueError(
                f"{where}: outside fold {label} there is no {kind} pair to choose its "
                "threshold from; every fold's complement needs both kinds"
            )
