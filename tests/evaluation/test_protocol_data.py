import numpy as np
import pytest

from catface_keras.evaluation.identification import DISTRACTOR_LABEL
from catface_keras.evaluation.pairs_file import read_pairs_file
from catface_keras.evaluation.protocol_data import protocols_from_identities


def test_protocols_from_identities_hand_case():
    identities = np.array([4, 4, 4, 9, 9, 7, 7, 7, 7])
    images = np.arange(9, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    distractors = np.full((2, 2, 2, 3), 200, np.uint8)
    data = protocols_from_identities(images, identities, distractors=distractors, num_pairs=5)
    assert data.protocols() == ("verification", "templates", "identification")
    assert len(data.images) == 11 and data.info["num_distractor_images"] == 2
    # Verification: genuine and impostor pairs alternate, so contiguous folds are balanced.
    pairs = data.verification
    np.testing.assert_array_equal(pairs.same, np.arange(10) % 2 == 0)
    np.testing.assert_array_equal(identities[pairs.first] == identities[pairs.second], pairs.same)
    # Templates, people in sorted order: 4 -> images {0, 1} and {2} (templates 0, 1),
    # 7 -> {5, 6} and {7, 8} (2, 3), 9 -> {3} and {4} (4, 5).
    np.testing.assert_array_equal(data.templates.template_ids, [0, 0, 1, 4, 5, 2, 2, 3, 3])
    assert data.templates.pairs.same.sum() == 3 and len(data.templates.pairs.same) == 15
    # Identification: first image of each person plus the distractors in the gallery.
    split = data.identification["tinyface_style"]
    np.testing.assert_array_equal(split.gallery, [0, 3, 5, 9, 10])
    expected = [4, 9, 7, DISTRACTOR_LABEL, DISTRACTOR_LABEL]
    np.testing.assert_array_equal(split.gallery_labels, expected)
    np.testing.assert_array_equal(split.probes, [1, 2, 4, 6, 7, 8])


def test_genuine_pairs_are_shuffled_before_the_folds_are_cut():
    # 40 people with 4 images: 240 genuine pairs, all kept. Unshuffled, the first
    # fold's genuine pairs would come from the first 4 people only.
    identities = np.repeat(np.arange(40), 4)
    images = np.zeros((160, 2, 2, 3), np.uint8)
    pairs = protocols_from_identities(images, identities, num_pairs=240, seed=3).verification
    first_fold = np.array_split(np.arange(len(pairs.same)), 10)[0]
    genuine = first_fold[pairs.same[first_fold]]
    assert len(np.unique(identities[pairs.first[genuine]])) > 10
    again = protocols_from_identities(images, identities, num_pairs=240, seed=3).verification
    np.testing.assert_array_equal(pairs.first, again.first)


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
