"""Views of a model's graph with inner feature maps tapped, nested models included."""

import keras
import numpy as np
import pytest

from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.visualization.views import iresnet_block_layers, tap_layers
from tiny_models import SIZE


def test_block_layers_are_the_first_stage_and_each_branch_last_block(model):
    assert iresnet_block_layers(model) == {
        "first": "stage1_block1_add",
        "fr_last": "fr_stage4_block1_add",
        "sb_last": "sb_stage4_block1_add",
    }
    ir18 = MultiBranchModel(backbone="ir_18", image_size=SIZE, branch_stage=0)
    assert iresnet_block_layers(ir18) == {
        "first": "fr_stage1_block2_add",
        "fr_last": "fr_stage4_block2_add",
        "sb_last": "sb_stage4_block2_add",
    }


def test_taps_share_the_weights_and_outputs_of_the_model(model, images):
    graph = tap_layers(model, ["fr_stage4_block1_add"])
    view = keras.Model(graph.inputs, [graph.outputs["embedding"],
                                      graph.taps["fr_stage4_block1_add"]])
    embedding, features = view(images)
    np.testing.assert_allclose(embedding, model(images)["embedding"], atol=1e-6)
    direct = keras.Model(model.input, model.get_layer("fr_stage4_block1_add").output)
    np.testing.assert_allclose(features, direct(images), atol=1e-6)
    assert view.get_layer("fr_stage4_block1_add_tap") is not None
    # Shared, not copied: every weight of the view is one of the model's.
    assert {id(weight) for weight in view.weights} <= {id(weight) for weight in model.weights}
    assert len(view.weights) > 0


def test_layers_inside_a_nested_model_are_reached(model, images):
    # The stage-2 model calls the stage-1 feature network as a single layer.
    inputs = keras.Input((SIZE, SIZE, 3))
    features = model.feature_network(inputs)
    outer = keras.Model(inputs, {
        "embedding": keras.layers.Dense(4, name="fused_dense")(features["fr_features"]),
        "attribute_logits": features["attribute_logits"],
    })
    assert iresnet_block_layers(outer)["sb_last"] == "sb_stage4_block1_add"
    graph = tap_layers(outer, ["sb_stage4_block1_add", "fused_dense"])
    view = keras.Model(graph.inputs, [graph.outputs["embedding"],
                                      graph.taps["sb_stage4_block1_add"]])
    embedding, features = view(images)
    np.testing.assert_allclose(embedding, outer(images)["embedding"], atol=1e-5)
    assert features.shape == (2, 2, 2, 64)


def test_unknown_layers_are_named(model):
    with pytest.raises(ValueError, match=r"Layers \['nope'\] are not in the model's graph"):
        tap_layers(model, ["nope"])
