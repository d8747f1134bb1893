"""Readers of the IJB-B / IJB-C meta files in the layout insightface ships them.

Under a root folder, `IJBC/` (and likewise `IJBB/` with `ijbb_` names) holds:

    IJBC/meta/ijbc_name_5pts_score.txt     image_name x1 y1 ... x5 y5 faceness_score
    IJBC/meta/ijbc_face_tid_mid.txt        image_name template_id media_id
    IJBC/meta/ijbc_template_pair_label.txt template_id_1 template_id_2 label (1 = same)
    IJBC/loose_crop/<image_name>           the loose face crops (JPEG)
    IJBC/meta/ijbc_1N_gallery_G1.csv, ..._G2.csv, ijbc_1N_probe_mixed.csv   (1:N, optional;
        IJB-B names its galleries S1 and S2) CSV with a header line, columns
        TEMPLATE_ID,SUBJECT_ID,... (one line per image; only the first two are read)

As insightface reads them, line i of the landmarks file and line i of the
template/media file describe the same image; the readers check that they do.
Landmarks are (x, y) in pixels of the loose crop, in the ArcFace order (left eye,
right eye, nose, left and right mouth corner).

Every check runs when the files are read, before any image is embedded: a
malformed line raises `ValueError` naming the file and its 1-based line number.
"""

import dataclasses
import os
import pathlib

import numpy as np

# Set name -> folder under the root.
FOLDERS = {"ijbb": "IJBB", "ijbc": "IJBC"}
# Set name -> the two galleries of its 1:N protocol.
GALLERIES = {"ijbb": ("S1", "S2"), "ijbc": ("G1", "G2")}

_IMAGE_COLUMNS = "image_name template_id media_id"
_LANDMARK_COLUMNS = "image_name x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 faceness_score"
_PAIR_COLUMNS = "template_id_1 template_id_2 label"
_SEARCH_COLUMNS = "TEMPLATE_ID,SUBJECT_ID,..."
# Lines of the pair file parsed at once (IJB-C has 15.7 million).
_PAIR_BLOCK_BYTES = 1 << 24


@dataclasses.dataclass(frozen=True)
class IJBImages:
    """The `N` face crops of a set, in the files' line order.

    Attributes:
        names: `(N,)` str, file names under `loose_crop/`.
        landmarks: `(N, 5, 2)` float64 (x, y) in pixels of the crop.
        faceness: `(N,)` float64 detector scores.
        templates: `(N,)` int64 template id of each image.
        media: `(N,)` int64 media (photo or video) id of each image.
    """

    names: np.ndarray
    landmarks: np.ndarray
    faceness: np.ndarray
    templates: np.ndarray
    media: np.ndarray


@dataclasses.dataclass(frozen=True)
class IJBSearchSet:
    """A 1:N gallery or probe set: `(T,)` int64 template ids (sorted, unique) and their subjects."""

    name: str
    templates: np.ndarray
    subjects: np.ndarray


@dataclasses.dataclass(frozen=True)
class IJBProtocol:
    """Everything a set's 1:1 and 1:N protocols need, read and checked.

    Attributes:
        name: `"ijbb"` or `"ijbc"`.
        image_folder: the `loose_crop` folder.
        images: the `IJBImages`.
        first, second: `(P,)` int64 template ids of each pair, in file order.
        same: `(P,)` bool, True for a genuine pair.
        galleries: the two 1:N galleries (`IJBSearchSet`), or `()` without 1:N files.
        probes: the 1:N mixed probe set, or None.
    """

    name: str
    image_folder: pathlib.Path
    images: IJBImages
    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    galleries: tuple
    probes: IJBSearchSet | None


def meta_path(root, name, stem):
    """`root/IJBC/meta/ijbc_<stem>` for `name="ijbc"`."""
    return pathlib.Path(root) / FOLDERS[name] / "meta" / f"{name}_{stem}"


def find_sets(root):
    """The names (`"ijbb"`, `"ijbc"`) whose folder exists under `root`, in that order."""
    return [name for name, folder in FOLDERS.items() if (pathlib.Path(root) / folder).is_dir()]


def _malformed(path, line_number, expected, line):
    return ValueError(
        f"{path}, line {line_number}: expected {expected}. Received: line={line.rstrip()!r}"
    )


def _text_lines(path):
    """(line number, line) for the non-blank lines of a text file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"IJB meta file not found. Received: path={path}")
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _number(text, kind, path, line_number, expected, line):
    try:
        value = kind(text)
    except ValueError:
        raise _malformed(path, line_number, expected, line) from None
    if kind is float and not np.isfinite(value):
        raise _malformed(path, line_number, expected, line)
    return value


def _read_landmarks(path):
    names, rows, lines, seen = [], [], [], {}
    expected = f"12 space-separated columns `{_LANDMARK_COLUMNS}` with numbers after the name"
    for number, line in _text_lines(path):
        fields = line.split()
        if len(fields) != 12:
            raise _malformed(path, number, expected, line)
        values = [_number(text, float, path, number, expected, line) for text in fields[1:]]
        if fields[0] in seen:
            raise ValueError(
                f"{path}, line {number}: image {fields[0]} is named twice (first on line "
                f"{seen[fields[0]]}). Received: line={line.rstrip()!r}"
            )
        seen[fields[0]] = number
        names.append(fields[0])
        rows.append(values)
        lines.append(number)
    # insightface parses landmarks and scores as float32; the same rounding here.
    values = np.asarray(rows, np.float32).astype(np.float64).reshape(-1, 11)
    return names, values[:, :10].reshape(-1, 5, 2), values[:, 10], lines


def _read_image_templates(path, landmark_path, names, landmark_lines):
    expected = f"3 space-separated columns `{_IMAGE_COLUMNS}` with integer ids"
    templates, media, count = [], [], 0
    for number, line in _text_lines(path):
        fields = line.split()
        if len(fields) != 3:
            raise _malformed(path, number, expected, line)
        templates.append(_number(fields[1], int, path, number, expected, line))
        media.append(_number(fields[2], int, path, number, expected, line))
        if count >= len(names) or fields[0] != names[count]:
            listed = (
                f"line {landmark_lines[count]} of {landmark_path} names {names[count]}"
                if count < len(names) else f"{landmark_path} has only {len(names)} images"
            )
            raise ValueError(
                f"{path}, line {number}: image {fields[0]} is not the image of the same row of "
                f"the landmarks file ({listed}); both files list the images in one order. "
                f"Received: line={line.rstrip()!r}"
            )
        count += 1
    if count != len(names):
        raise ValueError(
            f"{landmark_path}, line {landmark_lines[count]}: image {names[count]} has no line in "
            f"{path} (it lists {count} images, the landmarks file {len(names)}). "
            f"Received: image_name={names[count]}"
        )
    return np.asarray(templates, np.int64), np.asarray(media, np.int64)


def _check_files_exist(folder, names, landmark_path, landmark_lines):
    try:
        present = set(os.listdir(folder))
    except OSError:
        raise ValueError(
            f"the IJB image folder is missing or unreadable. Received: path={folder}"
        ) from None
    for name, number in zip(names, landmark_lines):
        if name not in present and not (folder / name).is_file():
            raise ValueError(
                f"{landmark_path}, line {number}: image file {folder / name} does not exist. "
                f"Received: image_name={name}"
            )


def _pair_rows_slowly(path, lines, first_number):
    """Parses a block line by line; raises at the first malformed line."""
    expected = f"3 space-separated integer columns `{_PAIR_COLUMNS}`"
    rows = []
    for offset, raw in enumerate(lines):
        line = raw.decode("utf-8", errors="replace")
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise _malformed(path, first_number + offset, expected, line)
        rows.append([_number(text, int, path, first_number + offset, expected, line)
                     for text in fields])
    return np.asarray(rows, np.int64).reshape(-1, 3)


def _pair_rows(path, lines, first_number):
    # np.loadtxt parses a well-formed block at C speed; any doubt goes line by line,
    # which finds and names the bad line.
    text = [raw.decode("utf-8", errors="replace") for raw in lines]
    try:
        rows = np.loadtxt(text, dtype=np.int64, ndmin=2)
    except ValueError:
        rows = None
    if rows is None or rows.shape[1:] != (3,) or len(rows) != sum(1 for t in text if t.strip()):
        rows = _pair_rows_slowly(path, lines, first_number)
    return rows


def _line_of_row(path, row):
    """The line number of the `row`-th (0-based) non-blank line."""
    for index, (number, _) in enumerate(_text_lines(path)):
        if index == row:
            return number
    raise IndexError(row)


def _read_pairs(path):
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"IJB meta file not found. Received: path={path}")
    blocks, first_number = [], 1
    with open(path, "rb") as handle:
        while lines := handle.readlines(_PAIR_BLOCK_BYTES):
            blocks.append(_pair_rows(path, lines, first_number))
            first_number += len(lines)
    rows = np.concatenate(blocks) if blocks else np.zeros((0, 3), np.int64)
    if len(rows) == 0:
        raise ValueError(f"{path} lists no template pairs. Received: path={path}")
    bad = np.flatnonzero((rows[:, 2] != 0) & (rows[:, 2] != 1))
    if len(bad):
        line = _line_of_row(path, int(bad[0]))
        raise ValueError(
            f"{path}, line {line}: the label must be 1 (same subject) or 0. "
            f"Received: label={int(rows[bad[0], 2])}"
        )
    same = rows[:, 2] == 1
    if same.all() or not same.any():
        raise ValueError(
            f"{path} must hold both genuine (label 1) and impostor (label 0) pairs. "
            f"Received: {int(same.sum())} genuine, {int((~same).sum())} impostor"
        )
    return rows[:, 0], rows[:, 1], same


def _check_templates_known(path, first, second, known, image_path):
    for column in (first, second):
        missing = np.flatnonzero(~np.isin(column, known))
        if len(missing):
            row = int(missing[0])
            line = _line_of_row(path, row)
            raise ValueError(
                f"{path}, line {line}: template {int(column[row])} has no image in "
                f"{image_path.name}. Received: template_id={int(column[row])}"
            )


def _read_search_set(path, name, known, image_path):
    """A 1:N CSV -> `IJBSearchSet` (one subject per template, templates with images)."""
    expected = f"comma-separated columns `{_SEARCH_COLUMNS}` with integer ids"
    subject_of, line_of = {}, {}
    for number, line in _text_lines(path):
        if number == 1:
            continue  # the header
        fields = line.split(",")
        if len(fields) < 2:
            raise _malformed(path, number, expected, line)
        template = _number(fields[0].strip(), int, path, number, expected, line)
        subject = _number(fields[1].strip(), int, path, number, expected, line)
        if subject_of.setdefault(template, subject) != subject:
            raise ValueError(
                f"{path}, line {number}: template {template} is given subject {subject}, but "
                f"subject {subject_of[template]} on line {line_of[template]}. "
                f"Received: line={line.rstrip()!r}"
            )
        line_of.setdefault(template, number)
    if not subject_of:
        raise ValueError(f"{path} lists no templates. Received: path={path}")
    templates = np.array(sorted(subject_of), np.int64)
    missing = templates[~np.isin(templates, known)]
    if len(missing):
        template = int(missing[0])
        raise ValueError(
            f"{path}, line {line_of[template]}: template {template} has no image in "
            f"{image_path.name}. Received: template_id={template}"
        )
    subjects = np.array([subject_of[t] for t in templates.tolist()], np.int64)
    return IJBSearchSet(name=name, templates=templates, subjects=subjects), line_of


def _check_one_template_per_subject(path, search_set, line_of):
    seen = {}
    for template, subject in zip(search_set.templates.tolist(), search_set.subjects.tolist()):
        if subject in seen:
            raise ValueError(
                f"{path}, line {line_of[template]}: subject {subject} has a second gallery "
                f"template {template} (the first is {seen[subject]}); a 1:N gallery holds one "
                f"template per subject. Received: template_id={template}"
            )
        seen[subject] = template


def _read_identification(root, name, known, image_path):
    gallery_names = GALLERIES[name]
    paths = [meta_path(root, name, f"1N_gallery_{g}.csv") for g in gallery_names]
    paths.append(meta_path(root, name, "1N_probe_mixed.csv"))
    present = [path.is_file() for path in paths]
    if not any(present):
        return (), None
    if not all(present):
        missing = [str(path) for path, there in zip(paths, present) if not there]
        raise ValueError(
            f"the 1:N protocol of {name} needs both galleries and the probe file; missing: "
            f"{', '.join(missing)}. Received: root={root}"
        )
    galleries = []
    for gallery_name, path in zip(gallery_names, paths):
        gallery, line_of = _read_search_set(path, gallery_name, known, image_path)
        _check_one_template_per_subject(path, gallery, line_of)
        galleries.append(gallery)
    probes, _ = _read_search_set(paths[-1], "probe_mixed", known, image_path)
    return tuple(galleries), probes


def read_protocol(root, name):
    """Reads and checks every meta file of set `name` (`"ijbb"` or `"ijbc"`) under `root`.

    Raises:
        ValueError: a file is missing or a line is malformed, naming the file and line:
            missing columns or non-numbers, an image named twice in the landmarks file,
            the two image lists out of step, an image file missing from `loose_crop/`,
            a pair label other than 0/1, a template of a pair or a 1:N set without an
            image, a 1:N template with two subjects, a gallery subject with two templates.
    """
    if name not in FOLDERS:
        raise ValueError(f"`name` must be one of {sorted(FOLDERS)}. Received: name={name!r}")
    root = pathlib.Path(root)
    landmark_path = meta_path(root, name, "name_5pts_score.txt")
    names, landmarks, faceness, landmark_lines = _read_landmarks(landmark_path)
    if not names:
        raise ValueError(f"{landmark_path} lists no images. Received: path={landmark_path}")
    image_path = meta_path(root, name, "face_tid_mid.txt")
    templates, media = _read_image_templates(image_path, landmark_path, names, landmark_lines)
    image_folder = root / FOLDERS[name] / "loose_crop"
    _check_files_exist(image_folder, names, landmark_path, landmark_lines)
    known = np.unique(templates)
    pair_path = meta_path(root, name, "template_pair_label.txt")
    first, second, same = _read_pairs(pair_path)
    _check_templates_known(pair_path, first, second, known, image_path)
    galleries, probes = _read_identification(root, name, known, image_path)
    images = IJBImages(
        names=np.asarray(names), landmarks=landmarks, faceness=faceness, templates=templates,
        media=media,
    )
    return IJBProtocol(
        name=name, image_folder=image_folder, images=images, first=first, second=second,
        same=same, galleries=galleries, probes=probes,
    )
