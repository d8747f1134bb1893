"""The warm-up file: `PredictionLog` records that run against the exported model."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from catface_keras.export import warmup


def test_warmup_requests_parse_and_run(exported, loaded):
    path = exported / "assets.extra" / "tf_serving_warmup_requests"
    requests = warmup.read_warmup_requests(path)
    seen = set()
    for model_name, signature, inputs in requests:
        assert model_name == "catface"
        (array,) = inputs.values()
        outputs = loaded.signatures[signature](**{name: tf.constant(value)
                                                  for name, value in inputs.items()})
        assert outputs["embedding"].shape[0] == len(array)
        assert np.all(np.isfinite(outputs["embedding_norm"]))
        seen.add((signature, len(array)))
    assert seen == {
        (signature, size)
        for signature in ("serving_default", "serving_bytes")
        for size in warmup.WARMUP_BATCH_SIZES
    }


def test_warmup_images_are_uint8_faces_and_jpeg_bytes():
    records = warmup.warmup_requests("m", batch_sizes=(2,))
    default, encoded = (record.predict_log.request for record in records)
    images = tf.make_ndarray(default.inputs["images"])
    assert images.shape == (2, 112, 112, 3) and images.dtype == np.uint8
    strings = tf.make_ndarray(encoded.inputs["image_bytes"])
    assert strings.shape == (2,) and strings[0][:2] == b"\xff\xd8"  # JPEG


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ValueError, match=r"`batch_sizes` must be positive ints. Received"):
        warmup.warmup_requests("m", batch_sizes=(0,))


def test_missing_serving_api_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps tensorflow-serving-api==2\.21\.0"):
        warmup.serving_apis()
