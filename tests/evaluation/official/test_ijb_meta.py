"""Malformed IJB meta files: a ValueError naming file and line, before any image is embedded."""

import re
import shutil

import keras
import numpy as np
import pytest
from evaluation.official.ijb_layout import ProjectionExtractor, write_ijb

from catface_keras.evaluation.official import ijb, ijb_meta


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("pristine")
    write_ijb(root)
    return root


@pytest.fixture
def root(pristine, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def meta(root, stem):
    return root / "IJBC" / "meta" / f"ijbc_{stem}"


def replace_line(path, number, text):
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def expect_error(root, tmp_path, file_name, message):
    out = tmp_path / "out"
    out.mkdir()
    extractor = ProjectionExtractor()
    with pytest.raises(ValueError, match=re.escape(file_name) + ".*" + message):
        ijb.run("ijbc", root, extractor, out)
    assert extractor.calls == []  # nothing was embedded
    assert list(out.iterdir()) == []  # and nothing written


@pytest.mark.parametrize("stem, number, text, message", [
    ("face_tid_mid.txt", 3, "3.jpg 100", r", line 3: expected 3 space-separated columns"),
    ("face_tid_mid.txt", 4, "4.jpg 100 x1", r", line 4: expected 3 .* integer ids"),
    ("name_5pts_score.txt", 2, "2.jpg 1 2 3 4 5 6 7 8 9 10", r", line 2: expected 12"),
    ("name_5pts_score.txt", 5, "5.jpg abc 2 3 4 5 6 7 8 9 10 0.9", r", line 5: expected 12"),
    ("name_5pts_score.txt", 6, "2.jpg 1 2 3 4 5 6 7 8 9 10 0.9",
     r", line 6: image 2.jpg is named twice \(first on line 2\)"),
    ("face_tid_mid.txt", 2, "3.jpg 100 100001", r", line 2: image 3.jpg is not the image"),
    ("template_pair_label.txt", 5, "100 101", r", line 5: expected 3 space-separated integer"),
    ("template_pair_label.txt", 9, "100 abc 0", r", line 9: expected 3"),
    ("template_pair_label.txt", 3, "100 101 2", r", line 3: the label must be 1 .* label=2"),
    ("template_pair_label.txt", 12, "100 999 0",
     r", line 12: template 999 has no image in ijbc_face_tid_mid\.txt"),
    ("1N_gallery_G1.csv", 2, "555,10,img/1.jpg", r", line 2: template 555 has no image"),
    ("1N_gallery_G2.csv", 3, "401,13,img/x.jpg", r"subject 13 has a second gallery template"),
    ("1N_probe_mixed.csv", 4, "101,ten,img/x.jpg", r", line 4: expected comma-separated"),
    ("1N_probe_mixed.csv", 5, "101,11,img/x.jpg", r", line 5: template 101 is given subject 11"),
])
def test_a_malformed_line_is_named(root, tmp_path, stem, number, text, message):
    replace_line(meta(root, stem), number, text)
    expect_error(root, tmp_path, f"ijbc_{stem}", message)


def test_a_missing_image_file_names_its_landmarks_line(root, tmp_path):
    (root / "IJBC" / "loose_crop" / "7.jpg").unlink()
    expect_error(root, tmp_path, "ijbc_name_5pts_score.txt",
                 r", line 7: image file .*7\.jpg does not exist")


def test_an_image_without_a_template_line_is_named(root, tmp_path):
    lines = meta(root, "face_tid_mid.txt").read_text().splitlines()
    meta(root, "face_tid_mid.txt").write_text("\n".join(lines[:-1]) + "\n")
    expect_error(root, tmp_path, "ijbc_name_5pts_score.txt",
                 rf", line {len(lines)}: image {len(lines)}.jpg has no line in")


def test_missing_files_are_named(root, tmp_path):
    meta(root, "1N_gallery_G2.csv").unlink()
    expect_error(root, tmp_path, "ijbc_1N_gallery_G2.csv", "")
    meta(root, "template_pair_label.txt").unlink()
    with pytest.raises(ValueError, match=r"not found.*ijbc_template_pair_label\.txt"):
        ijb_meta.read_protocol(root, "ijbc")


def test_pair_lines_are_counted_across_blocks(root, monkeypatch):
    monkeypatch.setattr(ijb_meta, "_PAIR_BLOCK_BYTES", 40)  # a few lines per block
    path = meta(root, "template_pair_label.txt")
    replace_line(path, 3, "")  # blank lines are skipped but keep their number
    protocol = ijb_meta.read_protocol(root, "ijbc")
    assert len(protocol.first) == 27 and protocol.same.sum() == 4
    replace_line(path, 20, "100 101 0 7")
    with pytest.raises(ValueError, match=r"ijbc_template_pair_label\.txt, line 20: expected 3"):
        ijb_meta.read_protocol(root, "ijbc")
    replace_line(path, 20, "100 999 0")
    with pytest.raises(ValueError, match=r"line 20: template 999 has no image"):
        ijb_meta.read_protocol(root, "ijbc")


def test_the_protocol_reads_what_the_files_say(root):
    protocol = ijb_meta.read_protocol(root, "ijbc")
    first_line = meta(root, "name_5pts_score.txt").read_text().splitlines()[0].split()
    assert protocol.images.names[0] == first_line[0] == "1.jpg"
    np.testing.assert_allclose(protocol.images.landmarks[0].reshape(-1),
                               np.float32([float(v) for v in first_line[1:11]]))
    assert protocol.images.faceness[0] == np.float32(first_line[11])
    assert [g.name for g in protocol.galleries] == ["G1", "G2"]
    np.testing.assert_array_equal(protocol.galleries[0].templates, [100, 200])
    np.testing.assert_array_equal(protocol.galleries[0].subjects, [10, 11])
    np.testing.assert_array_equal(protocol.probes.templates, [101, 201, 301, 401])


def test_find_lists_the_sets_present(tmp_path, root):
    assert ijb.find(root) == ["ijbc"]
    (root / "IJBB").mkdir()
    assert ijb.find(root) == ["ijbb", "ijbc"]
    assert ijb.find(tmp_path / "nothing") == []
