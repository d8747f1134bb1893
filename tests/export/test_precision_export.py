"""`catface export --precision` and batch-norm folding in the exported graph; an imported
iResNet exports with its embedding outputs only."""

import collections

import numpy as np
import pytest
import tensorflow as tf
from export.test_serving import faces, keras_reference

from catface_keras.cli.main import main
from catface_keras.models.loading import load_model

# ir_tiny stage 1: 23 batch norms, 16 of them after a conv or dense layer (see
# tests/models/test_batch_norm_folding.py).
BATCH_NORMS_LEFT = 23 - 16


def graph_ops(loaded, signature="serving_default"):
    """`Counter((op, dtype))` over the signature's graph and its function library."""
    graph = loaded.signatures[signature].graph.as_graph_def()
    counts = collections.Counter()
    for function in graph.library.function:
        for node in function.node_def:
            dtype = node.attr["T"].type if "T" in node.attr else 0  # 0: no single type
            counts[(node.op, tf.dtypes.as_dtype(dtype).name if dtype else None)] += 1
    return counts


@pytest.fixture(scope="module")
def exported_bfloat16(keras_model_path, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "catface_bf16"
    assert main(["export", "--model", str(keras_model_path), "--out", str(base),
                 "--precision", "bfloat16"]) == 0
    return tf.saved_model.load(str(base / "1"))


def test_default_export_is_float32_with_batch_norms_folded(loaded):
    ops = graph_ops(loaded)
    assert ops[("FusedBatchNormV3", "float32")] == BATCH_NORMS_LEFT
    assert ops[("Conv2D", "float32")] > 0 and ops[("Conv2D", "bfloat16")] == 0


def test_bfloat16_export_computes_in_bfloat16_and_answers_in_float32(
    exported_bfloat16, keras_model
):
    ops = graph_ops(exported_bfloat16)
    assert ops[("Conv2D", "bfloat16")] > 0 and ops[("Conv2D", "float32")] == 0
    assert ops[("FusedBatchNormV3", "bfloat16")] == BATCH_NORMS_LEFT
    images = faces(batch=4, seed=3)
    outputs = exported_bfloat16.signatures["serving_default"](images=tf.constant(images))
    assert {value.dtype for value in outputs.values()} == {tf.float32}
    expected = keras_reference(keras_model, images)
    cosines = np.sum(outputs["embedding"].numpy() * expected["embedding"], axis=1)
    assert np.all(cosines >= 0.999) and np.all(cosines < 1 + 1e-6)
    np.testing.assert_allclose(outputs["embedding_norm"].numpy(), expected["embedding_norm"],
                               rtol=2e-2)
    for name in keras_model.attribute_names:
        np.testing.assert_allclose(outputs[name].numpy(), expected[name], atol=2e-2)


def test_export_refuses_an_unknown_precision(keras_model_path, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", "--model", str(keras_model_path), "--out", str(tmp_path / "m"),
              "--precision", "int8"])
    assert "invalid choice: 'int8'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_imported_backbone_exports_its_embedding(imported_backbone_path, tmp_path, capsys):
    base = tmp_path / "backbone"
    assert main(["export", "--model", str(imported_backbone_path), "--out", str(base)]) == 0
    assert "wrote" in capsys.readouterr().out
    loaded = tf.saved_model.load(str(base / "1"))
    images = faces(batch=2, seed=5)
    for signature, inputs in (
        ("serving_default", {"images": tf.constant(images)}),
        ("serving_bytes", {"image_bytes": tf.constant(
            [tf.io.encode_png(face).numpy() for face in images])}),
    ):
        outputs = loaded.signatures[signature](**inputs)
        assert set(outputs) == {"embedding", "embedding_norm"}, signature
    model = load_model(imported_backbone_path, allow_embedder=True)
    resized = tf.image.resize(images.astype(np.float32), [model.image_size] * 2,
                              method="bilinear", antialias=True)
    embedding = model(resized)["embedding"].numpy()
    norm = np.linalg.norm(embedding, axis=-1)
    np.testing.assert_allclose(outputs["embedding_norm"].numpy(), norm, rtol=1e-5)
    np.testing.assert_allclose(outputs["embedding"].numpy(), embedding / norm[:, None],
                               rtol=1e-5, atol=1e-5)


def test_serving_model_reports_its_cosine_and_refuses_an_overflow(keras_model):
    from tiny_models import tiny_stage1_model

    from catface_keras.export.inference_graph import serving_model

    served = serving_model(keras_model, "float16")
    assert served.precision == "float16" and served.folded_batch_norms == 16
    assert served.cosine_to_float32["images"] == 8
    assert served.cosine_to_float32["cosine_min"] >= 0.999
    # Activations past float16's 65504: finite in float32, inf in float16.
    model = tiny_stage1_model()
    stem = model.get_layer("stem_bn")
    stem.gamma.assign(np.full(stem.gamma.shape, 1e6, np.float32))
    assert np.all(np.isfinite(model(np.zeros((1, 32, 32, 3), np.float32))["embedding"]))
    with pytest.raises(ValueError, match="at float16 the network's embeddings of procedural "
                       "faces are not finite"):
        serving_model(model, "float16")
