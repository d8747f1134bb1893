"""Round two, items 3 and 9: pair lists stay inside the data root and give a number that
means something (at least two folds, no pair listed with both labels)."""

import pytest

from catface_keras.data.pairs_file import read_pair_faces, read_pairs_file

from reliability.helpers import snapshot


@pytest.fixture
def root(tmp_path):
    """A data root with two people of two images, and a secret image beside it."""
    root = tmp_path / "data"
    for name in ("a/1.png", "a/2.png", "b/1.png", "b/2.png", "Ann/Ann_0001.jpg",
                 "Ann/Ann_0002.jpg", "Bo/Bo_0001.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not decoded by these tests")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key.png").write_bytes(b"private")
    (tmp_path / "secret" / "secret_0001.jpg").write_bytes(b"private")
    return root


@pytest.mark.parametrize("line", [
    "{secret}/key.png a/1.png 0",       # absolute path
    "../secret/key.png a/1.png 0",      # climbs out
    "a/1.png a/../../secret/key.png 0",  # climbs out in the middle
    "a/1.png ..\\secret\\key.png 0",     # Windows separators
    "../secret 1 Ann 1",                 # an LFW name that is a path
    "Ann 1 ../secret 1",
])
def test_a_pair_path_outside_the_data_root_is_refused(root, line):
    listing = root.parent / "pairs.txt"
    listing.write_text(line.format(secret=root.parent / "secret") + "\n")
    before = snapshot(root.parent)
    # Before: the secret image was opened, decoded and its path written to results.json.
    with pytest.raises(ValueError, match=r"pairs.txt, line 1: .*(not inside the data root|not a "
                                         r"person's name).*Refused"):
        read_pairs_file(listing, root)
    assert snapshot(root.parent) == before


def test_paths_inside_the_root_still_read(root):
    listing = root.parent / "pairs.txt"
    listing.write_text("a/1.png ./a/2.png 1\nAnn 1 2\n")
    pairs = read_pairs_file(listing, root)
    assert pairs.second == (str(root / "a/2.png"), str(root / "Ann/Ann_0002.jpg"))


def test_a_pair_listed_twice_with_opposite_labels_is_refused(root):
    listing = root.parent / "pairs.txt"
    listing.write_text("a/1.png a/2.png 1\nb/1.png b/2.png 1\na/2.png a/1.png 0\n")
    # Before: both kept silently, one of them wrong.
    with pytest.raises(ValueError, match=r"line 3: this pair is also on line 1 with the opposite "
                                         r"label"):
        read_pairs_file(listing, root)
    listing.write_text("a/1.png a/2.png 1\na/1.png a/2.png 1\n")  # a plain repeat is harmless
    assert len(read_pairs_file(listing, root).first) == 2


@pytest.mark.parametrize("text, message", [
    # One fold: each fold's threshold is chosen on the others, and there are none.
    ("a/1.png a/2.png 1 0\na/1.png b/1.png 0 0\nb/1.png b/2.png 1 0\na/2.png b/2.png 0 0\n",
     r"every pair is in fold 0"),
    # No fold column and four pairs: ten contiguous folds cannot be cut.
    ("a/1.png a/2.png 1\na/1.png b/1.png 0\nb/1.png b/2.png 1\na/2.png b/2.png 0\n",
     r"4 pair\(s\); 10-fold cross-validation needs at least 10"),
    # Two folds, but fold 0 alone holds the same-person pairs.
    ("a/1.png a/2.png 1 0\nb/1.png b/2.png 1 0\na/1.png b/1.png 0 1\na/2.png b/2.png 0 1\n",
     r"outside fold 0 there is no same-person pair"),
], ids=["single fold column", "too few pairs", "one kind per fold"])
def test_pairs_that_cross_validation_cannot_score_are_refused(root, text, message):
    listing = root.parent / "pairs.txt"
    listing.write_text(text)
    # Before: "accuracy 0.5, threshold 0.0", exit 0.
    with pytest.raises(ValueError, match=message):
        read_pair_faces(root, listing, 16)


def test_a_one_fold_lfw_header_is_refused(root):
    listing = root.parent / "pairs.txt"
    listing.write_text("1\t1\nAnn 1 2\nAnn 1 Bo 1\n")
    with pytest.raises(ValueError, match="every pair is in fold 0"):
        read_pair_faces(root, listing, 16)
