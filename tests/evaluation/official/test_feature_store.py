"""FeatureExtractor: the embeddings of `extract_features`, saved chunk by chunk, resumed."""

import json

import numpy as np
import pytest
from evaluation.official.benchmark_layouts import face

from catface_keras.data.resizing import resize_faces
from catface_keras.evaluation.features import extract_features
from catface_keras.evaluation.official.feature_store import FeatureExtractor

IMAGES = np.stack([face(seed) for seed in range(10)])


class Killed(Exception):
    pass


def loader(calls, fail_on_call=None):
    def load_images(indices):
        calls.append(indices.tolist())
        if len(calls) == fail_on_call:
            raise Killed("killed while loading")
        return IMAGES[indices]

    return load_images


def test_features_equal_extract_features_and_resume_after_a_kill(tiny_model, tmp_path):
    fingerprint = {"path": "m.keras", "bytes": 1}
    extractor = FeatureExtractor(tiny_model, tmp_path / "features", fingerprint, batch_size=3,
                                 chunk_size=4)
    calls = []
    with pytest.raises(Killed):
        extractor.features("lfw", 10, loader(calls, fail_on_call=2))
    parts = sorted(path.name for path in (tmp_path / "features" / "lfw.parts").iterdir())
    assert parts == ["000000.npz"]  # the first chunk survived the kill
    assert not (tmp_path / "features" / "lfw.npy").exists()

    calls.clear()
    resumed = FeatureExtractor(tiny_model, tmp_path / "features", fingerprint, batch_size=3,
                               chunk_size=4)
    features = resumed.features("lfw", 10, loader(calls))
    assert calls == [[4, 5, 6, 7], [8, 9]] and resumed.embedded == 6
    reference = extract_features(tiny_model, resize_faces(IMAGES, 32), 3)
    np.testing.assert_allclose(features.embeddings, reference.embeddings, atol=1e-6)
    np.testing.assert_allclose(features.norms, reference.norms, rtol=1e-5)
    assert features.embeddings.shape == (10, 16)
    np.testing.assert_allclose(features.attribute_logits, reference.attribute_logits, atol=1e-5)
    assert not (tmp_path / "features" / "lfw.parts").exists()
    record = json.loads((tmp_path / "features" / "lfw.json").read_text())
    assert record == {"model": fingerprint, "image_size": 32, "precision": "float32", "count": 10, "flip": True,
                      "normalize": True}

    # Complete: nothing is loaded or embedded again.
    calls.clear()
    again = FeatureExtractor(tiny_model, tmp_path / "features", fingerprint, chunk_size=4)
    np.testing.assert_array_equal(again.features("lfw", 10, loader(calls)).embeddings,
                                  features.embeddings)
    assert calls == [] and again.embedded == 0


def test_other_settings_and_another_model_are_embedded_afresh(tiny_model, tmp_path):
    extractor = FeatureExtractor(tiny_model, tmp_path, {"bytes": 1}, chunk_size=8)
    calls = []
    normalised = extractor.features("set", 4, loader(calls))
    raw = extractor.features("set", 4, loader(calls), flip=False, normalize=False)
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == [
        "set-noflip-unnormalized.logits.npy", "set-noflip-unnormalized.norms.npy",
        "set-noflip-unnormalized.npy", "set.logits.npy", "set.norms.npy", "set.npy"]
    np.testing.assert_allclose(np.linalg.norm(normalised.embeddings, axis=1), 1, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(raw.embeddings, axis=1), raw.norms, rtol=1e-6)
    calls.clear()
    changed = FeatureExtractor(tiny_model, tmp_path, {"bytes": 2}, chunk_size=8)
    changed.features("set", 4, loader(calls))
    assert calls == [[0, 1, 2, 3]] and changed.embedded == 4
