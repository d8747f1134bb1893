"""`catface align`: person folders of photos -> a training-ready aligned folder."""

import json

import cv2
import numpy as np
import pytest
from alignment.photo_faces import StubDetector, face_photo, write_photo

from catface_keras.alignment.detection import DEFAULT_MIN_CONFIDENCE
from catface_keras.alignment.folder import REPORT_FILE
from catface_keras.landmark_alignment import ARCFACE_TEMPLATE
from catface_keras.cli.main import SUBCOMMANDS, main
from catface_keras.data.image_folder import read_image_folder


@pytest.fixture
def photos(tmp_path):
    """Two people: alice (2 faces, a blank photo, a broken file), bob (1 face); a loose file."""
    source = tmp_path / "photos"
    write_photo(source / "alice" / "a1.jpg", face_photo(0, 0))
    write_photo(source / "alice" / "a2.png", face_photo(0, 1, offset=(100, 80)))
    write_photo(source / "alice" / "wall.png", np.full((200, 240, 3), 128, np.uint8))
    (source / "alice" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (source / "alice" / "notes.txt").write_text("not a photo")
    write_photo(source / "bob" / "b1.jpg", face_photo(2, 0))
    (source / "README").write_text("loose")
    return source


def test_commands_are_registered():
    for name in ("align", "embed", "verify"):
        assert SUBCOMMANDS[name] == f"catface_keras.cli.{name}"


def test_align_writes_faces_and_reports_the_rest(photos, tmp_path, mtcnn_detector,
                                                 use_detector, capsys):
    use_detector(mtcnn_detector)
    destination = tmp_path / "aligned"

    assert main(["align", str(photos), str(destination)]) == 0

    out = capsys.readouterr().out
    assert "3 face(s) from 3 of 5 photo(s) of 2 person(s)" in out
    assert "no face in 1, undecodable 1" in out
    report = json.loads((destination / REPORT_FILE).read_text())
    assert report["counts"] == {"photos": 5, "photos_with_face": 3, "faces": 3, "no_face": 1,
                                "undecodable": 1, "identities": 2, "below_min_confidence": 0}
    assert report["min_confidence"] == DEFAULT_MIN_CONFIDENCE
    assert report["below_min_confidence"] == []
    assert report["no_face"] == ["alice/wall.png"]
    assert [entry["photo"] for entry in report["undecodable"]] == ["alice/broken.jpg"]
    assert report["not_in_a_person_folder"] == ["README"]
    assert [entry["face"] for entry in report["faces"]] == [
        "alice/a1.png", "alice/a2.png", "bob/b1.png"]
    assert np.array(report["faces"][0]["landmarks"]).shape == (5, 2)
    # The image-folder reader takes the result as it is.
    files = read_image_folder(destination)
    assert files.num_classes == 2 and list(files.identities) == [0, 0, 1]
    crop = cv2.imread(files.paths[0])
    assert crop.shape == (112, 112, 3)
    # Nothing is left beside DST.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["aligned", "photos"]


def test_existing_destination_is_kept_without_overwrite(photos, tmp_path, use_detector, capsys):
    detector = StubDetector([(ARCFACE_TEMPLATE * 2 + 40, 150)])
    use_detector(detector)
    destination = tmp_path / "aligned"
    destination.mkdir()
    (destination / "mine.txt").write_text("keep me")

    assert main(["align", str(photos), str(destination)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert detector.calls == 0
    assert [path.name for path in destination.iterdir()] == ["mine.txt"]

    assert main(["align", str(photos), str(destination), "--overwrite"]) == 0
    assert not (destination / "mine.txt").exists()
    assert (destination / "bob" / "b1.png").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["aligned", "photos"]


def test_a_failing_run_leaves_the_destination_as_it_was(photos, tmp_path, use_detector):
    class FailsOnSecondPhoto(StubDetector):
        def detect(self, image):
            if self.calls == 1:
                raise RuntimeError("detector crashed")
            return super().detect(image)

    use_detector(FailsOnSecondPhoto([(ARCFACE_TEMPLATE * 2 + 40, 150)]))
    destination = tmp_path / "aligned"
    destination.mkdir()
    (destination / "mine.txt").write_text("keep me")

    with pytest.raises(RuntimeError, match="detector crashed"):
        main(["align", str(photos), str(destination), "--overwrite"])
    assert [path.name for path in destination.iterdir()] == ["mine.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["aligned", "photos"]


def test_all_faces_keeps_every_face_largest_first(photos, tmp_path, use_detector):
    small = ARCFACE_TEMPLATE * 0.8 + 150
    large = ARCFACE_TEMPLATE * 1.5 + 10
    use_detector(StubDetector([(small, 60), (large, 120)]))
    destination = tmp_path / "aligned"

    assert main(["align", str(photos), str(destination), "--all-faces"]) == 0

    report = json.loads((destination / REPORT_FILE).read_text())
    assert report["counts"]["faces"] == 6 and report["all_faces"] is True
    assert sorted(path.name for path in (destination / "bob").iterdir()) == [
        "b1_face0.png", "b1_face1.png"]
    first = next(entry for entry in report["faces"] if entry["face"] == "bob/b1_face0.png")
    np.testing.assert_allclose(first["landmarks"], large, atol=0.01)


def test_photos_with_one_stem_get_distinct_names(tmp_path, use_detector):
    source = tmp_path / "photos"
    write_photo(source / "carol" / "x.jpg", face_photo(3))
    write_photo(source / "carol" / "x.png", face_photo(3, 1))
    use_detector(StubDetector([(ARCFACE_TEMPLATE * 2 + 40, 150)]))

    assert main(["align", str(source), str(tmp_path / "aligned")]) == 0
    assert sorted(path.name for path in (tmp_path / "aligned" / "carol").iterdir()) == [
        "x.png", "x_png.png"]


@pytest.mark.parametrize("where, message", [("inside", "must lie outside SRC"),
                                            ("same", "must lie outside SRC")])
def test_destination_overlapping_the_source_is_refused(photos, where, message, use_detector,
                                                       capsys):
    use_detector(StubDetector([]))
    destination = photos / "aligned" if where == "inside" else photos
    assert main(["align", str(photos), str(destination), "--overwrite"]) == 2
    assert message in capsys.readouterr().err


def test_source_without_person_folders_is_refused(tmp_path, use_detector, capsys):
    use_detector(StubDetector([]))
    (tmp_path / "flat").mkdir()
    write_photo(tmp_path / "flat" / "a.jpg", face_photo(0))
    assert main(["align", str(tmp_path / "flat"), str(tmp_path / "out")]) == 2
    assert "holds no photos in person folders" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_detections_below_min_confidence_are_dropped_and_listed(photos, tmp_path, use_detector,
                                                                capsys):
    doubtful = ARCFACE_TEMPLATE * 1.5 + 10  # the larger box: it would win without the cut
    sure = ARCFACE_TEMPLATE * 0.8 + 150
    use_detector(StubDetector([(doubtful, 120, 0.85), (sure, 60, 0.95)]))
    destination = tmp_path / "aligned"

    assert main(["align", str(photos), str(destination)]) == 0

    assert "3 detection(s) below --min-confidence 0.9 dropped" in capsys.readouterr().out
    report = json.loads((destination / REPORT_FILE).read_text())
    assert report["counts"]["below_min_confidence"] == 3
    assert [(entry["photo"], entry["confidence"]) for entry in report["below_min_confidence"]] == [
        ("alice/a1.jpg", 0.85), ("alice/a2.png", 0.85), ("bob/b1.jpg", 0.85)]
    # The crop is the surer (smaller) face's.
    (kept,) = [entry for entry in report["faces"] if entry["photo"] == "bob/b1.jpg"]
    assert kept["confidence"] == 0.95
    np.testing.assert_allclose(kept["landmarks"], sure, atol=0.01)

    # Above both scores nothing is kept: each photo is "no face", each detection listed.
    assert main(["align", str(photos), str(destination), "--overwrite",
                 "--min-confidence", "0.99"]) == 0
    report = json.loads((destination / REPORT_FILE).read_text())
    assert report["counts"]["faces"] == 0 and report["counts"]["below_min_confidence"] == 6
    assert report["no_face"] == ["alice/a1.jpg", "alice/a2.png", "alice/wall.png", "bob/b1.jpg"]


@pytest.mark.parametrize("argument, message", [
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--min-confidence", "1.5"], "--min-confidence must be in [0, 1], got 1.5"),
])
def test_bad_workers_or_confidence_is_refused(photos, tmp_path, use_detector, capsys, argument,
                                              message):
    use_detector(StubDetector([]))
    assert main(["align", str(photos), str(tmp_path / "aligned"), *argument]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "aligned").exists()
