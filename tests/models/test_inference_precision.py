"""A saved network run in bfloat16 / float16: its dtype policies, weights, outputs and cosine."""

import keras
import numpy as np
import pytest

from catface_keras.data.synthetic import render_face
from catface_keras.models.inference_precision import (
    cosine_agreement,
    embedding_agreement,
    load_model_at_precision,
    model_at_precision,
    model_precision,
    precision_record,
    resolve_precision,
)


@pytest.fixture(scope="module")
def faces():
    """Eight procedural faces of four people at the tiny model's 32 px."""
    return np.stack([render_face(person, pose, 32) for person in range(4) for pose in range(2)])


def test_auto_follows_the_hardware():
    assert resolve_precision("auto", gpus=["GPU:0"], flags=set()) == "float16"
    assert resolve_precision("auto", gpus=[], flags={"avx512f", "avx512_bf16"}) == "bfloat16"
    assert resolve_precision("auto", gpus=[], flags={"amx_bf16"}) == "bfloat16"
    assert resolve_precision("auto", gpus=[], flags={"avx2", "avx512f"}) == "float32"
    assert resolve_precision("float16", gpus=[], flags=set()) == "float16"
    with pytest.raises(ValueError, match="Received: precision='half'"):
        resolve_precision("half")


@pytest.mark.parametrize("precision, policy, compute", [
    ("bfloat16", "mixed_bfloat16", "bfloat16"),
    ("float16", "mixed_float16", "float16"),
])
def test_rebuilt_network_computes_low_and_keeps_weights_and_outputs_float32(
    tiny_model, faces, precision, policy, compute
):
    network = model_at_precision(tiny_model, precision)
    assert network is not tiny_model and type(network) is type(tiny_model)
    assert model_precision(tiny_model) == "float32" and model_precision(network) == precision
    layers = {layer.name: layer for layer in network._flatten_layers(include_self=False)}
    for name in ("stem_conv", "stage1_block1_conv2", "fr_self_attention", "embedding_dense"):
        assert layers[name].dtype_policy.name == policy
        assert layers[name].compute_dtype == compute
    # The networks pin their outputs to float32: the embedding (a norm that means quality)
    # and the attribute logits.
    assert layers["embedding"].dtype_policy.name == "float32"
    assert layers["attribute_logits"].dtype_policy.name == "float32"
    assert {variable.dtype for variable in network.weights} == {"float32"}
    for mine, theirs in zip(network.get_weights(), tiny_model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    outputs = network(faces.astype("float32"), training=False)
    dtypes = {key: keras.backend.standardize_dtype(value.dtype) for key, value in outputs.items()}
    assert dtypes == {"embedding": "float32", "attribute_logits": "float32"}
    agreement = embedding_agreement(tiny_model, network, faces)
    assert agreement["images"] == 8
    assert 0.999 <= agreement["cosine_min"] <= agreement["cosine_mean"] <= 1 + 1e-9
    # Rounded, not the same numbers: the rebuilt network does compute in low precision.
    assert agreement["cosine_min"] < 1 - 1e-9


def test_float32_returns_the_model_itself(tiny_model):
    assert model_at_precision(tiny_model, "float32") is tiny_model


def test_load_at_precision_resolves_auto(tiny_model_path, monkeypatch):
    from catface_keras.models import inference_precision

    monkeypatch.setattr(inference_precision, "choose_dtype_policy",
                        lambda name, gpus=None, flags=None: "mixed_bfloat16")
    model, precision = load_model_at_precision(tiny_model_path, "auto")
    assert precision == "bfloat16" and model_precision(model) == "bfloat16"


def test_imported_backbone_runs_at_bfloat16(imported_backbone_path, faces):
    reference, _ = load_model_at_precision(imported_backbone_path, "float32", allow_embedder=True)
    network, _ = load_model_at_precision(imported_backbone_path, "bfloat16", allow_embedder=True)
    assert list(network(faces.astype("float32"))) == ["embedding"]
    assert embedding_agreement(reference, network, faces)["cosine_min"] >= 0.999


def test_cosine_agreement_by_hand():
    reference = np.array([[1.0, 0.0], [0.0, 1.0]])
    other = np.array([[1.0, 1.0], [0.0, 2.0]])
    agreement = cosine_agreement(reference, other)
    assert agreement["cosine_min"] == pytest.approx(1 / np.sqrt(2))
    assert agreement["cosine_mean"] == pytest.approx((1 / np.sqrt(2) + 1) / 2)
    assert agreement["images"] == 2
    with pytest.raises(ValueError, match="one shape"):
        cosine_agreement(reference, other[:1])


def test_precision_record():
    assert precision_record("float32") == {"precision": "float32", "dtype_policy": "float32"}
    record = precision_record("bfloat16", {"cosine_min": 0.9995})
    assert record == {"precision": "bfloat16", "dtype_policy": "mixed_bfloat16",
                      "cosine_to_float32": {"cosine_min": 0.9995}}


def test_a_model_whose_layers_fix_their_dtype_is_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(inputs))
    with pytest.raises(ValueError, match="sets its layers' dtypes itself"):
        model_at_precision(model, "bfloat16")


def test_stage2_network_runs_at_bfloat16(faces):
    from tiny_models import tiny_network

    from catface_keras.models.fusion import FusionModel

    keras.utils.set_random_seed(0)
    model = FusionModel(tiny_network(), fusion="catf")
    network = model_at_precision(model, "bfloat16")
    # Its attribute logits (the first dense layer Keras lists) stay float32; the rest is bf16.
    assert model_precision(network) == "bfloat16"
    assert network.stage1.feature_network.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert embedding_agreement(model, network, faces)["cosine_min"] >= 0.999
