"""`catface embed` (npz contents) and `catface verify` (threshold from file or flag)."""

import cv2
import numpy as np
import pytest
from alignment.photo_faces import StubDetector, face_photo, write_photo

from catface_keras.alignment.embedding import embed_faces
from catface_keras.landmark_alignment import ARCFACE_TEMPLATE, align_face
from catface_keras.cli.main import main
from catface_keras.data.synthetic import render_face
from catface_keras.evaluation.calibration import save_calibration

EMBEDDING_DIM = 16


@pytest.fixture
def aligned_folder(tmp_path):
    """Three 112x112 faces in two person folders, and a broken file."""
    folder = tmp_path / "aligned"
    write_photo(folder / "p0" / "a.png", render_face(0, 0, 112))
    write_photo(folder / "p0" / "b.png", render_face(0, 1, 112))
    write_photo(folder / "p1" / "c.png", render_face(1, 0, 112))
    (folder / "p1" / "d.jpg").write_bytes(b"broken")
    return folder


def test_embed_aligned_faces(aligned_folder, tmp_path, tiny_model_path, tiny_model, capsys):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(aligned_folder), "--model", str(tiny_model_path),
                 "--out", str(out)]) == 0
    assert "3 face(s) from 4 image(s)" in capsys.readouterr().out

    with np.load(out) as data:  # no pickles needed
        result = {key: data[key] for key in data.files}
    assert result["embeddings"].shape == (3, EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(result["embeddings"], axis=1), 1.0, rtol=1e-5)
    assert list(result["files"]) == ["p0/a.png", "p0/b.png", "p1/c.png"]
    assert result["norms"].shape == (3,) and np.all(result["norms"] > 0)
    assert result["boxes"].shape == (3, 4) and np.all(np.isnan(result["boxes"]))
    assert result["landmarks"].shape == (3, 5, 2) and result["confidence"].shape == (3,)
    assert list(result["face_index"]) == [0, 0, 0]
    assert list(result["skipped_files"]) == ["p1/d.jpg"]
    assert "undecodable" in result["skipped_reasons"][0]
    # Flip fusion and the norm, computed independently from the model's raw embedding.
    face = render_face(0, 0, 112)
    resized = cv2.resize(face, (32, 32), interpolation=cv2.INTER_AREA).astype("float32")
    raw = np.asarray(tiny_model(np.stack([resized, resized[:, ::-1]]))["embedding"])
    fused = raw[0] + raw[1]
    np.testing.assert_allclose(result["embeddings"][0], fused / np.linalg.norm(fused), atol=1e-5)
    np.testing.assert_allclose(result["norms"][0], np.linalg.norm(raw[0]), rtol=1e-5)


def test_embed_raw_photos_with_align(tmp_path, tiny_model_path, mtcnn_detector, use_detector):
    use_detector(mtcnn_detector)
    folder = tmp_path / "photos"
    write_photo(folder / "x" / "one.jpg", face_photo(0))
    write_photo(folder / "x" / "empty.png", np.full((200, 200, 3), 40, np.uint8))
    out = tmp_path / "emb.npz"

    assert main(["embed", str(folder), "--model", str(tiny_model_path), "--out", str(out),
                 "--align"]) == 0

    with np.load(out) as data:
        assert data["embeddings"].shape == (1, EMBEDDING_DIM)
        assert list(data["files"]) == ["x/one.jpg"]
        box = data["boxes"][0]
        assert np.all(np.isfinite(box)) and 40 < box[0] < box[2] < 230
        assert 0.8 <= data["confidence"][0] <= 1
        assert data["landmarks"].shape == (1, 5, 2)
        assert list(data["skipped_files"]) == ["x/empty.png"]
        assert list(data["skipped_reasons"]) == ["no face found"]


def test_embed_refuses_an_existing_output(aligned_folder, tmp_path, tiny_model_path, capsys):
    out = tmp_path / "emb.npz"
    out.write_bytes(b"mine")
    assert main(["embed", str(aligned_folder), "--model", str(tiny_model_path),
                 "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"


def test_embed_faces_resizes_to_the_model_and_handles_none(tiny_model):
    faces = np.stack([render_face(i, 0, 112) for i in range(2)])
    embeddings, norms = embed_faces(tiny_model, faces, batch_size=1)  # two batches
    assert embeddings.shape == (2, EMBEDDING_DIM) and norms.shape == (2,)
    one_call = embed_faces(tiny_model, faces, batch_size=2)  # one batch
    np.testing.assert_allclose(embeddings, one_call[0], atol=1e-5)
    np.testing.assert_allclose(norms, one_call[1], rtol=1e-5)
    empty, empty_norms = embed_faces(tiny_model, np.zeros((0, 112, 112, 3), np.uint8))
    assert empty.shape == (0, EMBEDDING_DIM) and empty_norms.shape == (0,)


def scored(output):
    line = next(line for line in output.splitlines() if "score" in line)
    return float(line.split("score ")[1].split()[0]), line


@pytest.fixture
def two_photos(tmp_path):
    first = write_photo(tmp_path / "a.jpg", face_photo(0, 0))
    second = write_photo(tmp_path / "b.jpg", face_photo(2, 0))
    return first, second


def test_verify_with_a_given_threshold(two_photos, tiny_model_path, mtcnn_detector,
                                       use_detector, capsys):
    use_detector(mtcnn_detector)
    first, second = two_photos
    args = ["verify", str(first), str(second), "--model", str(tiny_model_path)]

    assert main([*args, "--threshold", "-1"]) == 0
    score, line = scored(capsys.readouterr().out)
    assert -1 <= score <= 1 and "given by --threshold" in line and "same person" in line
    assert main([*args, "--threshold", "1"]) == 0
    assert "different people" in capsys.readouterr().out
    # One photo against itself scores 1.
    assert main(["verify", str(first), str(first), "--model", str(tiny_model_path),
                 "--threshold", "0.999"]) == 0
    self_score, line = scored(capsys.readouterr().out)
    assert self_score == pytest.approx(1.0, abs=1e-5) and "same person" in line


def test_verify_reads_the_calibrated_threshold(two_photos, tiny_model_path, tmp_path,
                                               use_detector, capsys):
    use_detector(StubDetector([(ARCFACE_TEMPLATE * 1.5 + 50, 150)]))
    model = tmp_path / "model.keras"
    model.write_bytes(tiny_model_path.read_bytes())
    first, second = two_photos
    assert main(["verify", str(first), str(second), "--model", str(model),
                 "--threshold", "0"]) == 0
    score, _ = scored(capsys.readouterr().out)
    save_calibration(model, {1e-3: score + 0.01, 1e-2: score - 0.01}, "test pairs")

    assert main(["verify", str(first), str(second), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert f"threshold {score + 0.01:.4f} at FAR 1e-3 from {tmp_path / 'model.calibration.json'}" \
        in out and "different people" in out
    assert "calibrated on the evaluated pairs of test pairs (no held-out check)" in out
    assert main(["verify", str(first), str(second), "--model", str(model), "--far", "0.01"]) == 0
    assert "same person" in capsys.readouterr().out

    split = {"fraction": 0.3, "seed": 1, "calibration_pairs": 60, "held_out_pairs": 140}
    save_calibration(model, {1e-2: score - 0.01}, "test pairs", split=split,
                     held_out={1e-2: {"far": 0.0143, "tar": 0.95}})
    assert main(["verify", str(first), str(second), "--model", str(model), "--far", "0.01"]) == 0
    assert ("calibrated on a 30 % split of test pairs; on the 140 held-out pairs FAR 0.014, "
            "TAR 0.950: same person") in capsys.readouterr().out


def test_verify_without_calibration_says_how_to_make_one(two_photos, tmp_path, tiny_model_path,
                                                         use_detector, capsys):
    detector = StubDetector([])
    use_detector(detector)
    model = tmp_path / "model.keras"
    model.write_bytes(tiny_model_path.read_bytes())
    first, second = two_photos

    assert main(["verify", str(first), str(second), "--model", str(model), "--far", "1e-4"]) == 2
    error = capsys.readouterr().err
    assert f"No calibration file {tmp_path / 'model.calibration.json'}" in error
    assert f"catface evaluate --model {model}" in error and "--threshold" in error
    assert detector.calls == 0  # refused before detection or the model load


def test_verify_reports_a_photo_without_a_face(tmp_path, tiny_model_path, mtcnn_detector,
                                               use_detector, capsys):
    use_detector(mtcnn_detector)
    face = write_photo(tmp_path / "face.jpg", face_photo(0))
    blank = write_photo(tmp_path / "blank.png", np.full((240, 240, 3), 200, np.uint8))

    assert main(["verify", str(face), str(blank), "--model", str(tiny_model_path),
                 "--threshold", "0.3"]) == 2
    assert f"{blank}: no face found" in capsys.readouterr().err


def test_verify_aligned_faces_skip_detection(tmp_path, tiny_model_path, use_detector, capsys):
    detector = StubDetector([])
    use_detector(detector)
    photo = face_photo(0)
    landmarks = ARCFACE_TEMPLATE * 1.4 + 70
    first = write_photo(tmp_path / "a.png", align_face(photo, landmarks))
    assert main(["verify", str(first), str(first), "--model", str(tiny_model_path),
                 "--threshold", "0.5", "--aligned"]) == 0
    assert "same person" in capsys.readouterr().out and detector.calls == 0


def test_embed_at_bfloat16_stores_the_precision_and_cosine(aligned_folder, tmp_path,
                                                           tiny_model_path, capsys):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(aligned_folder), "--model", str(tiny_model_path),
                 "--out", str(out), "--precision", "bfloat16", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "bfloat16: embedding cosine to float32 on the first 2 image(s)" in printed
    reference = tmp_path / "reference.npz"
    assert main(["embed", str(aligned_folder), "--model", str(tiny_model_path),
                 "--out", str(reference)]) == 0
    with np.load(out) as low, np.load(reference) as full:
        assert str(low["precision"]) == "bfloat16" and str(full["precision"]) == "float32"
        assert "cosine_to_float32" not in full.files
        cosine_min, cosine_mean = low["cosine_to_float32"]
        # The first batch (--batch-size 2): its rows against the float32 file's.
        cosines = np.sum(low["embeddings"][:2] * full["embeddings"][:2], axis=1)
        assert cosine_min == pytest.approx(cosines.min(), abs=1e-6)
        assert cosine_mean == pytest.approx(cosines.mean(), abs=1e-6)
        assert 0.999 <= cosine_min < 1
        assert list(low["files"]) == list(full["files"])


def test_embed_and_verify_an_imported_backbone(aligned_folder, tmp_path, imported_backbone_path,
                                               use_detector, capsys):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(aligned_folder), "--model", str(imported_backbone_path),
                 "--out", str(out)]) == 0
    with np.load(out) as data:
        assert data["embeddings"].shape == (3, 12)
        np.testing.assert_allclose(np.linalg.norm(data["embeddings"], axis=1), 1.0, rtol=1e-5)
    use_detector(StubDetector([]))
    face = aligned_folder / "p0" / "a.png"
    assert main(["verify", str(face), str(face), "--model", str(imported_backbone_path),
                 "--threshold", "0.5", "--aligned"]) == 0
    score, line = scored(capsys.readouterr().out)
    assert score == pytest.approx(1.0, abs=1e-5) and "same person" in line
