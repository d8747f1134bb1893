"""The exported signatures answer as the Keras model does, and reject bad input clearly."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from catface_keras.export import serving

# The SavedModel runs the Keras model's own ops in a graph; float32 round-off only.
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def faces(batch=3, size=112, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def keras_reference(model, images):
    """What the signatures should return, computed from the Keras model directly."""
    size = model.image_size
    assert size != 112  # the in-graph resize is under test
    resized = tf.image.resize(images.astype(np.float32), [size, size], method="bilinear",
                              antialias=True)
    outputs = model(resized, training=False)
    embedding = outputs["embedding"].numpy()
    norm = np.linalg.norm(embedding, axis=-1)
    expected = {"embedding": embedding / norm[:, None], "embedding_norm": norm}
    probabilities = 1 / (1 + np.exp(-outputs["attribute_logits"].numpy()))
    for index, name in enumerate(model.attribute_names):
        expected[name] = probabilities[:, index]
    return expected


def assert_outputs_close(actual, expected):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key].numpy(), value, err_msg=key, **TOLERANCE)


def test_default_signature_matches_keras_model(loaded, keras_model):
    images = faces()
    outputs = loaded.signatures["serving_default"](images=tf.constant(images))
    assert_outputs_close(outputs, keras_reference(keras_model, images))
    assert outputs["embedding"].dtype == tf.float32
    np.testing.assert_allclose(np.linalg.norm(outputs["embedding"], axis=-1), 1.0, rtol=1e-5)
    assert set(keras_model.attribute_names) == {"Male", "Bald", "Big_Nose", "Chubby",
                                                "Narrow_Eyes"}


def test_weights_are_frozen_into_the_serving_graph(loaded, keras_model):
    # Constants, not variables, so that oneDNN lays each kernel out once (see ServingArchive).
    assert keras_model.weights
    assert not loaded.signatures["serving_default"].variables
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert "Conv2D" in ops
    assert not ops & {"ReadVariableOp", "VarHandleOp", "ResourceGather"}


def test_bytes_signature_matches_keras_model_on_png(loaded, keras_model):
    images = faces(seed=1)
    encoded = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    outputs = loaded.signatures["serving_bytes"](image_bytes=encoded)
    assert_outputs_close(outputs, keras_reference(keras_model, images))


def test_bytes_signature_resizes_square_images_to_112(loaded):
    small = np.full((56, 56, 3), 90, np.uint8)
    outputs = loaded.signatures["serving_bytes"](
        image_bytes=tf.constant([tf.io.encode_png(small).numpy()])
    )
    flat = loaded.signatures["serving_default"](images=tf.fill([1, 112, 112, 3], np.uint8(90)))
    np.testing.assert_allclose(outputs["embedding"], flat["embedding"], atol=1e-5)


IMAGES_EXPECTED = r"`images` must be uint8 \[batch, 112, 112, 3\]"


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 64, 64, 3), np.uint8), IMAGES_EXPECTED + r".*\[2 64 64 3\]"),
        (np.zeros((112, 112, 3), np.uint8), IMAGES_EXPECTED + r".*\[112 112 3\]"),
        (np.zeros((1, 1, 112, 112, 3), np.uint8), IMAGES_EXPECTED + r".*\[1 1 112 112 3\]"),
        (np.zeros((2, 112, 112, 4), np.uint8), IMAGES_EXPECTED + r".*\[2 112 112 4\]"),
        (np.zeros((2, 112, 112, 3), np.float32), "expected to be a uint8 tensor"),
    ],
    ids=["size", "rank3", "rank5", "channels", "dtype"],
)
def test_default_signature_errors_name_the_expected_input(loaded, images, message):
    # Signatures called by name (as TF Serving calls them) do not check the TensorSpec's
    # shape; the graph does.
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError), match=message):
        loaded.signatures["serving_default"](images=tf.constant(images))


def test_default_signature_spec_rejects_wrong_shape_at_the_api(loaded):
    with pytest.raises(TypeError, match=r"TensorSpec\(shape=\(None, 112, 112, 3\), dtype=tf.uint8"):
        loaded.serving_default(tf.zeros((1, 64, 64, 3), tf.uint8))


@pytest.mark.parametrize(
    "encoded, message",
    [
        (lambda: tf.io.encode_png(np.zeros((112, 112, 3), np.uint8)),
         r"`image_bytes` must be a 1-D string tensor \[batch\].*Received shape:\] \[\]"),
        (lambda: tf.constant([tf.io.encode_png(np.zeros((40, 60, 3), np.uint8)).numpy()]),
         r"`image_bytes` must hold square aligned face crops.*\[40\] \[60\]"),
        (lambda: tf.constant([b"not an image"]), "Unknown image file format"),
    ],
    ids=["rank0", "non-square", "undecodable"],
)
def test_bytes_signature_errors_name_the_expected_input(loaded, encoded, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_bytes"](image_bytes=encoded())


def test_attribute_names_must_not_collide_with_outputs():
    class Model:
        image_size = 112
        attribute_names = ("Male", "embedding_norm")

    with pytest.raises(ValueError, match=r"distinct non-empty strings.*Received: model.attr"):
        serving.serving_attribute_names(Model())


@pytest.mark.slow
def test_saved_model_cli_lists_both_signatures(exported):
    # The `saved_model_cli` script sits next to the interpreter (venv/bin); the module form
    # works from any environment that has TensorFlow.
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
         str(exported), "--all"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    shown = result.stdout
    default = shown.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert "signature_def['serving_bytes']" in shown
    assert "inputs['images']" in default and "DT_UINT8" in default
    assert "(-1, 112, 112, 3)" in default
    for output in ("embedding", "embedding_norm", "Male", "Narrow_Eyes"):
        assert f"outputs['{output}']" in default
    with_bytes = shown.split("signature_def['serving_bytes']")[1].split("signature_def[")[0]
    assert "inputs['image_bytes']" in with_bytes and "DT_STRING" in with_bytes


FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
images = np.full((2, 112, 112, 3), 128, np.uint8)
default = loaded.signatures["serving_default"](images=tf.constant(images))
encoded = tf.constant([tf.io.encode_png(image).numpy() for image in images])
from_bytes = loaded.signatures["serving_bytes"](image_bytes=encoded)
print(json.dumps({"keys": sorted(default), "shape": default["embedding"].shape.as_list(),
                  "difference": float(np.abs(default["embedding"] - from_bytes["embedding"]).max())}))
"""


@pytest.mark.slow
def test_export_loads_and_answers_in_a_fresh_process(exported):
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(exported)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["shape"] == [2, 16]
    assert answer["keys"] == sorted(["embedding", "embedding_norm", "Male", "Bald", "Big_Nose",
                                     "Chubby", "Narrow_Eyes"])
    assert answer["difference"] < 1e-6
