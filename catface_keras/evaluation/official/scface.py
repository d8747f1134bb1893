"""SCface (Grgic et al., 2011) surveillance-to-mugshot identification: rank-1 per distance.

Layout: the database's own folder and file names (as bob.db.scface reads them),
directly under the benchmark root or in one sub-folder of it (e.g. `SCface_database/`):

    mugshot_frontal_cropped_all/001_frontal.JPG ... 130_frontal.JPG       the gallery
    surveillance_cameras_distance_{1,2,3}/<camera folder>/001_cam1_1.jpg  the probes:
        SUBJECT_camC_D; distance D = 1 (4.20 m), 2 (2.60 m), 3 (1.00 m)

The database ships unaligned crops (the mugshots are large head-and-shoulder
photographs); the benchmark expects every image replaced by its 112x112
aligned face (the ArcFace template, e.g. `catface align` or MTCNN), keeping the
folder and file names (any image extension), and stops with an error naming the
first image of another size.

Protocol (the low-resolution face recognition literature's): gallery = one
frontal mugshot per test subject; probes = the visible-light cameras cam1 ..
cam5 at each distance (5 images per subject and distance; the infrared cam6,
cam7 images are left out and counted); each probe is matched to the mugshots
by the cosine of the flip-fused normalised embeddings; rank-1 per distance.
Test subjects: all 130 for a model not trained on SCface, or the ones a file
lists (`scface_test_subjects`, one subject number a line) when it was
fine-tuned on the others.
"""

import pathlib
import re

import numpy as np

from catface_keras.atomic_files import write_text_atomically
from catface_keras.choices import IMAGE_SUFFIXES
from catface_keras.evaluation.official.table import write_json
from catface_keras.evaluation.official.tinyface import (
    CMC_RANKS,
    check_image_size,
    cmc,
    file_loader,
    image_ranks,
    write_cmc,
)

NAME = "scface"
GALLERY_FOLDER = "mugshot_frontal_cropped_all"
DISTANCES = (1, 2, 3)
DISTANCE_METRES = {1: 4.20, 2: 2.60, 3: 1.00}
VISIBLE_CAMERAS = (1, 2, 3, 4, 5)
_MUGSHOT = re.compile(r"^(\d+)_frontal$", re.IGNORECASE)
_PROBE = re.compile(r"^(\d+)_cam(\d+)_(\d+)$", re.IGNORECASE)


def distance_folder(distance):
    return f"surveillance_cameras_distance_{distance}"


def database_folder(root):
    """`root` or its one sub-folder holding `mugshot_frontal_cropped_all`, else None."""
    root = pathlib.Path(root)
    if (root / GALLERY_FOLDER).is_dir():
        return root
    if not root.is_dir():
        return None
    found = sorted(child for child in root.iterdir() if (child / GALLERY_FOLDER).is_dir())
    return found[0] if found else None


def find(root):
    return [NAME] if database_folder(root) is not None else []


def _images(folder):
    return sorted(path for path in folder.rglob("*")
                  if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def read_test_subjects(path):
    """Subject numbers listed in `path`, one a line (`#` starts a comment)."""
    path = pathlib.Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--scface-test-subjects {path} cannot be read: {error}") from None
    subjects = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit():
            raise ValueError(f"{path}, line {number}: expected a subject number (e.g. 001). "
                             f"Received: {line.strip()!r}")
        subjects.append(int(text))
    if not subjects:
        raise ValueError(f"{path} lists no subject")
    if len(set(subjects)) != len(subjects):
        raise ValueError(f"{path} lists a subject twice")
    return np.array(sorted(subjects), np.int64)


def load_protocol(root, scface_test_subjects=None):
    """The gallery and probe files of the SCface protocol (see the module docstring).

    Returns:
        dict with `paths` (mugshots first, then probes by distance), `subjects`,
        `distances` (0 for mugshots), `gallery` and `probe` (index arrays into
        `paths`, limited to the test subjects), `test_subjects`, `split`
        (a sentence for the report) and `infrared` (probes left out).
    """
    database = database_folder(root)
    if database is None:
        raise ValueError(f"{root} holds no {GALLERY_FOLDER} folder (SCface)")
    paths, subjects, distances = [], [], []
    for path in _images(database / GALLERY_FOLDER):
        match = _MUGSHOT.match(path.stem)
        if match is None:
            raise ValueError(f"SCface: {path} is not named SUBJECT_frontal (e.g. 001_frontal.JPG)")
        paths.append(path)
        subjects.append(int(match.group(1)))
        distances.append(0)
    if not paths:
        raise ValueError(f"SCface: {database / GALLERY_FOLDER} holds no image")
    if len(set(subjects)) != len(subjects):
        raise ValueError(f"SCface: {database / GALLERY_FOLDER} holds two mugshots of one subject")
    infrared = 0
    for distance in DISTANCES:
        folder = database / distance_folder(distance)
        if not folder.is_dir():
            raise ValueError(f"SCface: {folder} does not exist")
        for path in _images(folder):
            match = _PROBE.match(path.stem)
            if match is None:
                raise ValueError(f"SCface: {path} is not named SUBJECT_camC_D "
                                 "(e.g. 001_cam1_1.jpg)")
            subject, camera, file_distance = map(int, match.groups())
            if file_distance != distance:
                raise ValueError(f"SCface: {path} says distance {file_distance} but lies in "
                                 f"{folder.name}")
            if camera not in VISIBLE_CAMERAS:
                infrared += 1
                continue
            paths.append(path)
            subjects.append(subject)
            distances.append(distance)
    subjects, distances = np.array(subjects, np.int64), np.array(distances, np.int64)
    gallery_subjects = subjects[distances == 0]
    if scface_test_subjects is None:
        test = gallery_subjects.copy()
        split = (f"all {len(test)} subjects (for a model not fine-tuned on SCface)")
    else:
        test = read_test_subjects(scface_test_subjects)
        unknown = np.setdiff1d(test, gallery_subjects)
        if len(unknown):
            raise ValueError(f"{scface_test_subjects}: subjects {unknown[:5].tolist()} have no "
                             f"mugshot in {database / GALLERY_FOLDER}")
        split = (f"the {len(test)} test subjects of {scface_test_subjects} (the model was "
                 f"fine-tuned on the other {len(gallery_subjects) - len(test)})")
    in_test = np.isin(subjects, test)
    probe = np.flatnonzero(in_test & (distances > 0))
    strangers = np.setdiff1d(subjects[probe], gallery_subjects)
    if len(strangers):
        raise ValueError(f"SCface: probes of subjects {strangers[:5].tolist()} have no mugshot "
                         f"in {database / GALLERY_FOLDER}")
    for distance in DISTANCES:
        if not np.any(distances[probe] == distance):
            raise ValueError(f"SCface: no probe image of the test subjects in "
                             f"{database / distance_folder(distance)}")
    hint = (" (SCface images must be replaced by their aligned faces, keeping the names; "
            "see the README, 'Comparing with published numbers')")
    check_image_size(paths[0], hint=hint)
    check_image_size(paths[probe[0]], hint=hint)
    return {"paths": paths, "subjects": subjects, "distances": distances,
            "gallery": np.flatnonzero(in_test & (distances == 0)), "probe": probe,
            "test_subjects": test, "split": split, "infrared": infrared,
            "database": database}


def check(name, root, scface_test_subjects=None, **options):
    load_protocol(root, scface_test_subjects)


def run(name, root, extractor, out_dir, flip=True, scface_test_subjects=None, **options):
    """Embeds the mugshots and probes, writes `report.md`, `results.json`, `cmc.csv` and
    `cmc.png`, returns `{"scface_d1", "scface_d2", "scface_d3"}` (rank-1 per distance)."""
    protocol = load_protocol(root, scface_test_subjects)
    paths, subjects, distances = protocol["paths"], protocol["subjects"], protocol["distances"]
    # Every image is embedded, whatever the split, so that another split reuses the file.
    features = extractor.features(NAME, len(paths), file_loader(paths), flip=flip,
                                  normalize=True)
    embeddings = features.embeddings
    gallery, probe = protocol["gallery"], protocol["probe"]
    ranks = image_ranks(embeddings[probe], subjects[probe], embeddings[gallery],
                        subjects[gallery])
    cells, curves, counts = {}, {}, {}
    for distance in DISTANCES:
        mine = ranks[distances[probe] == distance]
        cells[f"scface_d{distance}"] = float(np.mean(mine == 1))
        curves[f"distance {distance} ({DISTANCE_METRES[distance]:.2f} m)"] = cmc(
            mine, min(CMC_RANKS, len(gallery)))
        counts[f"d{distance}"] = int(len(mine))
    out_dir = pathlib.Path(out_dir)
    write_cmc(out_dir, curves, "CMC, SCface (surveillance probes vs mugshots)")
    write_json(out_dir / "results.json", {
        "benchmark": NAME, "database": str(protocol["database"]), "flip": bool(flip),
        "split": protocol["split"], "test_subjects": protocol["test_subjects"].tolist(),
        "gallery_images": int(len(gallery)), "probes": counts,
        "cameras": [f"cam{camera}" for camera in VISIBLE_CAMERAS],
        "infrared_images_left_out": protocol["infrared"], **cells,
        "cmc": {name: curve.tolist() for name, curve in curves.items()}})
    lines = [
        "# SCface identification",
        "",
        f"Subjects: {protocol['split']}. Gallery: {len(gallery)} frontal mugshots; probes: "
        f"cameras cam1-cam5 ({protocol['infrared']} infrared images left out); "
        f"{'flip-fused' if flip else 'unflipped'} normalised embeddings, cosine score.",
        "",
        "| distance | probes | rank-1 |",
        "| --- | --- | --- |",
        *[f"| {distance} ({DISTANCE_METRES[distance]:.2f} m) | {counts[f'd{distance}']} | "
          f"{100 * cells[f'scface_d{distance}']:.2f} % |" for distance in DISTANCES],
        "",
        "Figures: cmc.png (data in cmc.csv).",
    ]
    write_text_atomically("\n".join(lines) + "\n", out_dir / "report.md")
    return {**cells, "scface_split": protocol["split"]}
