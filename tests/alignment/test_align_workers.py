"""`align_folder(workers=N)`: the same folder and report as one worker, errors passed on."""

import functools
import os
import subprocess
import sys
import json

import numpy as np
import pytest
from alignment.photo_faces import CrashesOnDarkCorner, StubDetector, face_photo, write_photo

from catface_keras.alignment.folder import REPORT_FILE, align_folder
from catface_keras.landmark_alignment import ARCFACE_TEMPLATE
from catface_keras.cli.main import main

FACES = [(ARCFACE_TEMPLATE * 1.5 + 10, 120, 0.85), (ARCFACE_TEMPLATE * 0.8 + 150, 60, 0.95)]


@pytest.fixture
def photos(tmp_path):
    source = tmp_path / "photos"
    for person in range(3):
        for index in range(3):
            write_photo(source / f"p{person}" / f"{index}.png",
                        face_photo(person, index, offset=(40 + 10 * index, 50)))
    write_photo(source / "p1" / "wall.png", np.full((100, 120, 3), 128, np.uint8))
    (source / "p2" / "broken.jpg").write_bytes(b"not a jpeg")
    return source


def _folder(root):
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.slow  # spawns two Python processes
def test_two_workers_give_the_one_worker_folder(photos, tmp_path):
    make_detector = functools.partial(StubDetector, FACES)
    one = align_folder(photos, tmp_path / "one", make_detector, min_confidence=0.9)
    two = align_folder(photos, tmp_path / "two", make_detector, min_confidence=0.9, workers=2)

    assert (one.photos, one.faces, one.below_min_confidence) == (11, 9, 9)
    assert (two.photos, two.faces, two.no_face, two.undecodable, two.below_min_confidence) == (
        one.photos, one.faces, one.no_face, one.undecodable, one.below_min_confidence)
    first, second = _folder(tmp_path / "one"), _folder(tmp_path / "two")
    assert sorted(first) == sorted(second) and len(first) == 10  # 9 crops and the report
    assert first == second
    report = json.loads(first[REPORT_FILE])
    assert [entry["photo"] for entry in report["faces"]] == [
        f"p{person}/{index}.png" for person in range(3) for index in range(3)]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["one", "photos", "two"]


@pytest.mark.slow  # spawns two Python processes
def test_a_worker_error_stops_the_run_and_leaves_nothing(photos, tmp_path):
    crash = face_photo(2, 0)
    crash[0, 0] = 0
    write_photo(photos / "p2" / "0.png", crash)
    destination = tmp_path / "aligned"
    destination.mkdir()
    (destination / "mine.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="detector crashed"):
        align_folder(photos, destination, functools.partial(CrashesOnDarkCorner, FACES),
                     overwrite=True, workers=2)
    assert [path.name for path in destination.iterdir()] == ["mine.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["aligned", "photos"]


def test_workers_need_a_detector_factory(photos, tmp_path):
    with pytest.raises(ValueError, match="must be a picklable callable"):
        align_folder(photos, tmp_path / "aligned", StubDetector(FACES), workers=2)
    with pytest.raises(ValueError, match="workers=0"):
        align_folder(photos, tmp_path / "aligned", StubDetector(FACES), workers=0)
    with pytest.raises(ValueError, match="min_confidence=-0.1"):
        align_folder(photos, tmp_path / "aligned", StubDetector(FACES), min_confidence=-0.1)
    assert not (tmp_path / "aligned").exists()


@pytest.mark.slow  # two MTCNN worker processes
def test_cli_with_two_mtcnn_workers_matches_one(photos, tmp_path, mtcnn_detector, use_detector):
    use_detector(mtcnn_detector)
    assert main(["align", str(photos), str(tmp_path / "one")]) == 0
    assert main(["align", str(photos), str(tmp_path / "two"), "--workers", "2"]) == 0
    first, second = _folder(tmp_path / "one"), _folder(tmp_path / "two")
    assert len(first) > 3 and first == second


@pytest.mark.slow  # a Python process
def test_a_worker_ends_when_its_parent_is_gone():
    # Before: the workers of a killed `catface align` waited for work for ever.
    code = ("from catface_keras.alignment.folder import _exit_with_parent\n"
            "_exit_with_parent(parent_pid=-1, interval_s=0.01)\n"
            "raise SystemExit(0)\n")
    completed = subprocess.run([sys.executable, "-c", code], timeout=300,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert completed.returncode == 1
