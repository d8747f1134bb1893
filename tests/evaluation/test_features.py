"""One flip-fused embedding for `catface evaluate`, `embed` and `verify`."""

import numpy as np
from data.face_writers import write_image

from catface_keras.alignment.embedding import embed_faces
from catface_keras.cli.main import main
from catface_keras.data.resizing import resize_faces
from catface_keras.data.synthetic import render_face
from catface_keras.evaluation.features import extract_features
from catface_keras.evaluation.verification import cosine_scores


def test_features_are_the_fused_unit_sum_in_float64(tiny_model):
    images = np.stack([render_face(i, 0, 32) for i in range(3)])
    features = extract_features(tiny_model, images, batch_size=2)
    raw = np.asarray(tiny_model(images.astype("float32"))["embedding"], np.float64)
    mirrored = np.asarray(tiny_model(images[:, :, ::-1].astype("float32"))["embedding"], np.float64)
    fused = raw + mirrored
    assert features.embeddings.dtype == np.float64
    np.testing.assert_allclose(
        features.embeddings, fused / np.linalg.norm(fused, axis=1, keepdims=True), atol=1e-6
    )
    np.testing.assert_allclose(features.norms, np.linalg.norm(raw, axis=1), rtol=1e-5)
    assert features.attribute_logits.dtype == np.float32 and len(features.attribute_logits) == 3


def test_embed_verify_and_evaluate_give_identical_numbers(tiny_model, tiny_model_path, tmp_path,
                                                         capsys):
    """The same 112 px faces through `catface embed` / `embed_faces` and through the
    evaluation's resize and `extract_features`: equal to the last bit."""
    faces = np.stack([render_face(i, j, 112) for i in range(2) for j in range(2)])
    evaluated = extract_features(tiny_model, resize_faces(faces, 32))

    embedded, norms = embed_faces(tiny_model, faces)
    np.testing.assert_array_equal(embedded, evaluated.embeddings)
    np.testing.assert_array_equal(norms, evaluated.norms)

    folder = tmp_path / "faces"
    for index, face in enumerate(faces):
        write_image(folder / f"{index}.png", face)
    out = tmp_path / "emb.npz"
    assert main(["embed", str(folder), "--model", str(tiny_model_path), "--out", str(out)]) == 0
    with np.load(out) as data:
        assert list(data["files"]) == [f"{index}.png" for index in range(4)]
        np.testing.assert_array_equal(data["embeddings"], evaluated.embeddings.astype(np.float32))
    # `catface verify` prints the score of the evaluation's verification.
    expected = cosine_scores(evaluated.embeddings[[0]], evaluated.embeddings[[2]])[0]
    assert main(["verify", str(folder / "0.png"), str(folder / "2.png"), "--model",
                 str(tiny_model_path), "--aligned", "--threshold", "-1"]) == 0
    assert f"score {expected:.4f} (cosine)" in capsys.readouterr().out


def test_no_images_give_empty_features(tiny_model):
    features = extract_features(tiny_model, np.zeros((0, 32, 32, 3), np.uint8))
    assert features.embeddings.shape == (0, 16) and features.norms.shape == (0,)
    assert features.attribute_logits.shape[0] == 0
