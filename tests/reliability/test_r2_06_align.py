"""Round two, item 6: `catface align` skips and reports a symlink loop, and cleans up the
scratch folder a killed run left (never a live run's)."""

import fcntl
import json
import os

import pytest
from alignment.photo_faces import StubDetector, face_photo, write_photo

from catface_keras.alignment.folder import REPORT_FILE, align_folder

from reliability.helpers import snapshot

LANDMARKS = [[[90, 110], [150, 110], [120, 140], [95, 170], [145, 170]]]


@pytest.fixture
def detector():
    return StubDetector([(LANDMARKS[0], 120)])


@pytest.fixture
def plain_photos(tmp_path):
    source = tmp_path / "photos"
    write_photo(source / "alice" / "a1.jpg", face_photo(0, 0))
    write_photo(source / "bob" / "b1.jpg", face_photo(2, 0))
    return source


@pytest.fixture
def photos(plain_photos):
    source = plain_photos
    os.symlink("loop.jpg", source / "alice" / "loop.jpg")  # a photo that links to itself
    os.symlink("carol", source / "carol")  # a person folder that links to itself
    return source


def test_a_symlink_loop_is_reported_like_an_undecodable_photo(photos, tmp_path, detector):
    before = snapshot(photos)
    # Before: OSError (too many levels of symbolic links) from is_file, and no output at all.
    summary = align_folder(photos, tmp_path / "aligned", detector)
    assert (summary.photos, summary.faces, summary.undecodable) == (4, 2, 2)
    report = json.loads((tmp_path / "aligned" / REPORT_FILE).read_text())
    reasons = {entry["photo"]: entry["reason"] for entry in report["undecodable"]}
    assert sorted(reasons) == ["alice/loop.jpg", "carol"]
    assert all("symbolic links" in reason for reason in reasons.values())
    assert sorted(p.name for p in (tmp_path / "aligned").rglob("*.png")) == ["a1.png", "b1.png"]
    assert snapshot(photos) == before


def _scratch(parent, name, files):
    folder = parent / name
    (folder / "aligned" / "alice").mkdir(parents=True)
    for file in files:
        (folder / file).write_bytes(b"x")
    return folder


def test_the_scratch_folder_of_a_killed_run_is_removed_by_the_next(plain_photos, tmp_path,
                                                                    detector):
    # A killed run's folder: its lock file is there, and no process holds the lock.
    dead = _scratch(tmp_path, ".aligned.partial-dead0001", [".owner.lock", "aligned/alice/a.png"])
    # A live run's: the lock is held (here, by this process through another open file).
    live = _scratch(tmp_path, ".aligned.partial-live0001", [".owner.lock"])
    holder = open(live / ".owner.lock", "rb")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    # Not a scratch folder of this destination: never touched.
    other = _scratch(tmp_path, ".other.partial-dead0002", [".owner.lock"])
    try:
        align_folder(plain_photos, tmp_path / "aligned", detector)
    finally:
        holder.close()
    # Before: every `.aligned.partial-*` folder stayed for ever.
    assert not dead.exists()
    assert live.exists() and other.exists()
    leftovers = sorted(p.name for p in tmp_path.iterdir() if ".partial-" in p.name)
    assert leftovers == [".aligned.partial-live0001", ".other.partial-dead0002"]


def test_an_image_folder_with_symlink_loops_is_read_without_them(plain_photos, caplog):
    """The same class of input in a training / evaluation image folder."""
    from catface_keras.data.image_folder import read_image_folder

    os.symlink("loop.jpg", plain_photos / "alice" / "loop.jpg")
    os.symlink("carol", plain_photos / "carol")
    # Before: OSError (too many levels of symbolic links) while listing.
    with caplog.at_level("WARNING", logger="catface_keras.data.image_folder"):
        files = read_image_folder(plain_photos)
    assert [path.rsplit("/", 2)[-2:] for path in files.paths] == [["alice", "a1.jpg"],
                                                                   ["bob", "b1.jpg"]]
    left_out = sorted(record.getMessage() for record in caplog.records)
    assert len(left_out) == 2 and all("symbolic links" in message for message in left_out)
    assert "loop.jpg" in left_out[0] + left_out[1] and "carol" in left_out[0] + left_out[1]
