"""The official protocols' numbers on hand-made features, and their layouts' errors."""

import numpy as np
import pytest
import scipy.io
from evaluation.official.benchmark_layouts import (
    face,
    write_bin,
    write_image,
    write_scface,
    write_tinyface,
)

from catface_keras.evaluation.official import scface, tinyface, verification_bins
from catface_keras.evaluation.official.table import (
    COLUMNS,
    format_csv_table,
    format_markdown_table,
)
from catface_keras.evaluation.official.tinyface import cmc, image_ranks


def unit(rows):
    rows = np.asarray(rows, np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_image_ranks_count_every_gallery_image_as_a_candidate():
    # Gallery: identity 7 twice, identity 8 once, two distractors (-1).
    gallery = unit([[1, 0], [0.6, 0.8], [0.8, 0.6], [0.95, 0.31], [0, 1]])
    labels = np.array([7, 7, 8, -1, -1])
    probes = unit([[0.8, 0.6], [0, 1], [1, 0]])
    # Probe 0 (id 7): scores 0.8, 0.96(mate, best), 1.0(8), 0.946, 0.6 -> only id 8 above: 2.
    # Probe 1 (id 8): 0, 0.8, 0.6(mate), 0.31, 1.0 -> 0.8 and 1.0 above: 3.
    # Probe 2 (id 7): best mate 1.0 -> rank 1.
    ranks = image_ranks(probes, [7, 8, 7], gallery, labels)
    assert ranks.tolist() == [2, 3, 1]
    # By hand from the protocol: sort the gallery by score, find the first mate.
    for probe, label, rank in zip(probes, [7, 8, 7], ranks):
        order = np.argsort(-(gallery @ probe), kind="stable")
        assert np.flatnonzero(labels[order] == label)[0] + 1 == rank
    np.testing.assert_allclose(cmc(ranks, 4), [1 / 3, 2 / 3, 1, 1])


def test_image_ranks_do_not_merge_the_images_of_one_wrong_identity():
    # Two images of identity 2 outscore the mate: rank 3 here (AdaFace), where a
    # one-candidate-per-identity ranking would say 2.
    gallery = unit([[1, 0.1], [1, 0.2], [0, 1]])
    ranks = image_ranks(unit([[1, 0]]), [1], gallery, [2, 2, 1])
    assert ranks.tolist() == [3]


def test_image_ranks_ties_go_against_the_probe_and_chunks_agree():
    gallery = unit([[1, 0], [1, 0], [0, 1]])
    assert image_ranks(unit([[1, 0]]), [1], gallery, [2, 1, 3]).tolist() == [2]
    rng = np.random.default_rng(0)
    probes, gallery = unit(rng.normal(size=(9, 4))), unit(rng.normal(size=(12, 4)))
    probe_labels, gallery_labels = rng.integers(0, 3, 9), np.r_[0, 1, 2, rng.integers(0, 3, 9)]
    np.testing.assert_array_equal(
        image_ranks(probes, probe_labels, gallery, gallery_labels, chunk_size=2),
        image_ranks(probes, probe_labels, gallery, gallery_labels))
    with pytest.raises(ValueError, match=r"Probe identities \[5\] have no gallery image"):
        image_ranks(probes[:1], [5], gallery, gallery_labels)


def test_table_has_the_paper_columns_and_empty_cells_for_missing_data():
    assert [key for key, _ in COLUMNS] == [
        "lfw", "cfp_fp", "cplfw", "agedb_30", "calfw", "ijbb", "ijbc", "tinyface_r1",
        "tinyface_r5", "scface_d1", "scface_d2", "scface_d3"]
    cells = {"a": {"lfw": 0.99833, "tinyface_r1": 0.7202, "tinyface_r20": 0.8, "x": "text"},
             "b": {"ijbc": 0.9612}}
    markdown = format_markdown_table(cells, ["SCFace subjects: all 130."])
    assert markdown.splitlines()[0].startswith("| Model | LFW | CFP-FP | CPLFW | AgeDB | CALFW |")
    assert "| a | 99.83 |  |  |  |  |  |  | 72.02 |  |  |  |  |" in markdown
    assert "| b |  |  |  |  |  |  | 96.12 |" in markdown
    assert "- SCFace subjects: all 130." in markdown
    csv = format_csv_table(cells).splitlines()
    assert csv[0] == "model," + ",".join(key for key, _ in COLUMNS)
    assert csv[1] == "a,99.83,,,,,,,72.02,,,,"


def test_layouts_are_found_only_where_they_are(tmp_path):
    assert verification_bins.find(tmp_path) == []
    assert tinyface.find(tmp_path) == [] and scface.find(tmp_path) == []
    write_bin(tmp_path / "cfp_fp.bin", 2)
    write_bin(tmp_path / "lfw.bin", 2)
    (tmp_path / "agedb.bin").write_bytes(b"")  # not an insightface name
    write_tinyface(tmp_path)
    write_scface(tmp_path)
    assert verification_bins.find(tmp_path) == ["lfw", "cfp_fp"]
    assert tinyface.find(tmp_path) == ["tinyface"] and scface.find(tmp_path) == ["scface"]
    # The split unzipped without its top folder, and SCface directly under the root.
    bare = tmp_path / "bare"
    write_tinyface(bare)
    (bare / "tinyface" / "Testing_Set").rename(bare / "Testing_Set")
    write_scface(bare)
    (bare / "SCface_database" / "mugshot_frontal_cropped_all").rename(
        bare / "mugshot_frontal_cropped_all")
    assert tinyface.testing_set(bare) == bare / "Testing_Set"
    assert scface.database_folder(bare) == bare


def test_tinyface_protocol_reads_the_lists_and_the_aligned_copy(tmp_path):
    written = write_tinyface(tmp_path, distractors=2)
    protocol = tinyface.load_protocol(tmp_path)
    assert protocol["counts"] == {"Probe": 4, "Gallery_Match": 4, "Gallery_Distractor": 2}
    assert protocol["labels"].tolist() == [1, 2, 3, 1, 1, 2, 3, 3, -1, -1]
    assert [path.name for path in protocol["paths"][:4]] == [
        name.replace(".jpg", ".png") for name in written["Probe"][0]]
    assert all("aligned_pad_0.1_pad_high" in str(path) for path in protocol["paths"])
    assert protocol["probe"].tolist() == [0, 1, 2, 3]
    assert protocol["gallery"].tolist() == [4, 5, 6, 7, 8, 9]


def test_tinyface_without_the_aligned_copy_is_refused(tmp_path):
    write_tinyface(tmp_path, aligned=False)
    with pytest.raises(ValueError, match="not its aligned copy .*aligned_pad_0.1_pad_high.*"
                                         "26 rank-1 points"):
        tinyface.load_protocol(tmp_path)


def test_tinyface_aligned_images_of_another_size_are_refused(tmp_path):
    write_tinyface(tmp_path)
    probe = tmp_path / "aligned_pad_0.1_pad_high" / "Probe" / "1_0.png"
    write_image(probe, face(1, 40))
    with pytest.raises(ValueError, match=f"{probe} is 40x40, not an aligned 112x112 face"):
        tinyface.load_protocol(tmp_path)


@pytest.mark.parametrize("content, message", [
    ({"probe_set": np.array([["1_0.jpg"]], object)}, r"has no probe_ids \(expected keys"),
    ({"probe_set": np.array([["1_0.jpg"]], object), "probe_ids": np.array([[1.0], [2.0]])},
     "one integer identity per entry"),
])
def test_malformed_tinyface_lists_name_the_file(tmp_path, content, message):
    write_tinyface(tmp_path)
    mat = tmp_path / "tinyface" / "Testing_Set" / "probe_img_ID_pairs.mat"
    scipy.io.savemat(mat, content)
    with pytest.raises(ValueError, match=f"{mat}.*{message}"):
        tinyface.load_protocol(tmp_path)
    mat.write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match=f"{mat} is not a readable MATLAB .mat file"):
        tinyface.load_protocol(tmp_path)


def test_tinyface_list_naming_a_missing_image_names_both(tmp_path):
    write_tinyface(tmp_path)
    (tmp_path / "aligned_pad_0.1_pad_high" / "Gallery_Match" / "2_1.png").unlink()
    with pytest.raises(ValueError, match="gallery_match_img_ID_pairs.mat lists 2_1.jpg, which "
                                         "is not in .*Gallery_Match"):
        tinyface.load_protocol(tmp_path)


def test_scface_protocol_uses_visible_cameras_and_the_test_subjects(tmp_path):
    write_scface(tmp_path, subjects=(1, 2, 3), cameras=(1, 2), infrared=(6,))
    protocol = scface.load_protocol(tmp_path)
    assert protocol["infrared"] == 3  # cam6 at distance 1, one per subject
    assert protocol["subjects"][protocol["gallery"]].tolist() == [1, 2, 3]
    assert len(protocol["probe"]) == 3 * 3 * 2
    assert np.bincount(protocol["distances"][protocol["probe"]]).tolist() == [0, 6, 6, 6]
    assert protocol["split"].startswith("all 3 subjects")
    subjects = tmp_path / "test_subjects.txt"
    subjects.write_text("# fine-tuned on subject 1\n002\n3  # last\n")
    protocol = scface.load_protocol(tmp_path, subjects)
    assert protocol["subjects"][protocol["gallery"]].tolist() == [2, 3]
    assert set(protocol["subjects"][protocol["probe"]]) == {2, 3}
    assert "the 2 test subjects of" in protocol["split"] and "other 1" in protocol["split"]


@pytest.mark.parametrize("text, message", [
    ("002\nabc\n", r"line 2: expected a subject number"),
    ("# nothing\n", "lists no subject"),
    ("002\n2\n", "lists a subject twice"),
    ("004\n", r"subjects \[4\] have no mugshot"),
])
def test_scface_test_subject_file_errors_name_the_file(tmp_path, text, message):
    write_scface(tmp_path)
    subjects = tmp_path / "subjects.txt"
    subjects.write_text(text)
    with pytest.raises(ValueError, match=f"{subjects}.*{message}"):
        scface.load_protocol(tmp_path, subjects)


def test_scface_misnamed_or_unaligned_images_are_named(tmp_path):
    database = write_scface(tmp_path)
    wrong = database / "surveillance_cameras_distance_2" / "cam1" / "001_cam1_3.jpg"
    write_image(wrong, face(0))
    with pytest.raises(ValueError, match=f"{wrong} says distance 3 but lies in "
                                         "surveillance_cameras_distance_2"):
        scface.load_protocol(tmp_path)
    wrong.unlink()
    odd = write_image(database / "surveillance_cameras_distance_1" / "cam1" / "x.jpg", face(0))
    with pytest.raises(ValueError, match=f"{odd} is not named SUBJECT_camC_D"):
        scface.load_protocol(tmp_path)
    odd.unlink()
    mugshot = database / "mugshot_frontal_cropped_all" / "001_frontal.JPG"
    write_image(mugshot, face(0, 300))
    with pytest.raises(ValueError, match=f"{mugshot} is 300x300, not an aligned 112x112 face "
                                         r"\(SCface images must be replaced"):
        scface.load_protocol(tmp_path)
