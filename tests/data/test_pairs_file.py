"""Verification pair lists (LFW `pairs.txt`, plain `path1 path2 label [fold]`)."""

import pytest
from data.face_writers import face_image, write_image

from catface_keras.data.pairs_file import read_pair_faces, read_pairs_file


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_lfw_pairs_txt_both_line_forms_and_folds(tmp_path):
    _touch(tmp_path, "Ann_Lee/Ann_Lee_0001.jpg", "Ann_Lee/Ann_Lee_0002.jpg",
           "Bo/Bo_0001.png", "Bo/Bo_0003.jpg")
    (tmp_path / "pairs.txt").write_text(
        "2\t1\n"
        "Ann_Lee\t1\t2\n"
        "Ann_Lee\t2\tBo\t1\n"
        "Bo\t1\t3\n"
        "Bo   3   Ann_Lee   1\n"
    )
    pairs = read_pairs_file(tmp_path / "pairs.txt", tmp_path)
    assert pairs.first == tuple(str(tmp_path / p) for p in (
        "Ann_Lee/Ann_Lee_0001.jpg", "Ann_Lee/Ann_Lee_0002.jpg", "Bo/Bo_0001.png",
        "Bo/Bo_0003.jpg"))
    assert pairs.second[1] == str(tmp_path / "Bo/Bo_0001.png")
    assert pairs.same.tolist() == [True, False, True, False]
    assert pairs.folds.tolist() == [0, 0, 1, 1]
    # A header that does not match the pairs is an error naming the file.
    (tmp_path / "bad.txt").write_text("10\t300\nAnn_Lee\t1\t2\n")
    with pytest.raises(ValueError, match="bad.txt: the header says 10 folds"):
        read_pairs_file(tmp_path / "bad.txt", tmp_path)
    (tmp_path / "missing.txt").write_text("Ann_Lee\t1\t9\n")
    with pytest.raises(ValueError, match=r"missing.txt, line 1: no image .*Ann_Lee_0009"):
        read_pairs_file(tmp_path / "missing.txt", tmp_path)


def test_plain_pair_list_with_and_without_folds(tmp_path):
    _touch(tmp_path, "a/1.jpg", "a/2.jpg", "b/1.jpg")
    (tmp_path / "list.txt").write_text("# comment\na/1.jpg a/2.jpg 1 0\n\na/1.jpg b/1.jpg 0 1\n")
    pairs = read_pairs_file(tmp_path / "list.txt", tmp_path)
    assert pairs.same.tolist() == [True, False] and pairs.folds.tolist() == [0, 1]
    assert pairs.second == (str(tmp_path / "a/2.jpg"), str(tmp_path / "b/1.jpg"))
    (tmp_path / "nofold.txt").write_text("a/1.jpg a/2.jpg 1\na/1.jpg b/1.jpg 0\n")
    assert read_pairs_file(tmp_path / "nofold.txt", tmp_path).folds is None
    (tmp_path / "label.txt").write_text("a/1.jpg a/2.jpg yes\n")
    with pytest.raises(ValueError, match="label.txt, line 1: expected 'path1 path2 label"):
        read_pairs_file(tmp_path / "label.txt", tmp_path)
    (tmp_path / "some.txt").write_text("a/1.jpg a/2.jpg 1 0\na/1.jpg b/1.jpg 0\n")
    with pytest.raises(ValueError, match="a fold on every line or on none"):
        read_pairs_file(tmp_path / "some.txt", tmp_path)


def test_pair_faces_leave_out_pairs_with_an_undecodable_image(tmp_path):
    for name, seed in (("a/1.png", 0), ("a/2.png", 1), ("c/1.png", 2)):
        write_image(tmp_path / name, face_image(seed, 20, 20))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "1.jpg").write_bytes(b"\xff\xd8 broken")
    # Two folds, each with same and different pairs (fewer than ten pairs need a fold column).
    (tmp_path / "pairs.txt").write_text(
        "a/1.png b/1.jpg 0 0\nc/1.png a/2.png 0 0\na/2.png a/1.png 1 0\n"
        "c/1.png a/1.png 0 1\na/1.png a/2.png 1 1\n"
    )
    faces = read_pair_faces(tmp_path, tmp_path / "pairs.txt", 16)
    # Decoded images in sorted path order: a/1, a/2, c/1 (b/1 skipped, rows renumbered).
    assert faces.images.shape == (3, 16, 16, 3) and faces.identities is None
    assert faces.pairs.first.tolist() == [2, 1, 2, 0]
    assert faces.pairs.second.tolist() == [1, 0, 0, 1]
    assert faces.pairs.same.tolist() == [False, True, False, True]
    assert faces.pairs.folds.tolist() == [0, 0, 1, 1]
    assert (faces.info["skipped_images"], faces.info["skipped_pairs"]) == (1, 1)
    assert faces.info["num_pairs"] == 4 and "b/1.jpg" in faces.info["skipped_examples"][0]
