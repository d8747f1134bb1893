"""Batch norms folded into the convolution before them: hand-checked weights, equal outputs."""

import keras
import numpy as np
import pytest

from catface_keras.data.synthetic import render_face
from catface_keras.layers.batch_norm import FusedBatchNormalization, batch_norm
from catface_keras.models.batch_norm_folding import fold_batch_norms, folded_weights
from catface_keras.models.loading import load_model


def batch_norm_count(model):
    return sum(isinstance(layer, keras.layers.BatchNormalization)
               for layer in model._flatten_layers(include_self=False))


def randomise_statistics(model, seed=1):
    """Moving statistics and affine parameters away from 0 and 1, as after training."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.3, layer.beta.shape))
    return model


@pytest.fixture(scope="module")
def faces():
    return np.stack([render_face(person, 0, 32) for person in range(4)]).astype("float32")


def test_folded_weights_by_hand():
    layer = FusedBatchNormalization(epsilon=1.0)
    layer.build((None, 1))
    layer.set_weights([np.array([3.0]), np.array([0.5]), np.array([1.0]), np.array([3.0])])
    # s = gamma / sqrt(var + eps) = 3 / 2; kernel 2 * s = 3; bias (b - mean) s + beta.
    kernel, bias = folded_weights(np.array([[2.0]]), None, layer)
    np.testing.assert_allclose(kernel, [[3.0]])
    np.testing.assert_allclose(bias, [(0.0 - 1.0) * 1.5 + 0.5])
    _, bias = folded_weights(np.array([[2.0]]), np.array([4.0]), layer)
    np.testing.assert_allclose(bias, [(4.0 - 1.0) * 1.5 + 0.5])
    # Without scale and center (the embedding's last batch norm): s = 1 / sqrt(var + eps).
    plain = FusedBatchNormalization(center=False, scale=False, epsilon=1.0)
    plain.build((None, 1))
    plain.set_weights([np.array([1.0]), np.array([3.0])])
    kernel, bias = folded_weights(np.array([[2.0]]), np.array([5.0]), plain)
    np.testing.assert_allclose(kernel, [[1.0]])
    np.testing.assert_allclose(bias, [(5.0 - 1.0) / 2.0])


def test_folded_stage1_network_gives_the_same_outputs(faces):
    from tiny_models import tiny_stage1_model

    model = randomise_statistics(tiny_stage1_model())
    folded = fold_batch_norms(model)
    # ir_tiny, branch stage 3: stem 1; blocks (bn2, bn3) x 5 (stages 1-3 shared, stage 4 in
    # each branch) = 10; shortcut convs where the width changes (stages 2, 3, 4 x 2) = 4;
    # the embedding's last BN after its dense layer = 1. Left: each block's bn1 (before a
    # padded conv), the heads' first BNs.
    assert folded.folded_batch_norms == 16
    assert batch_norm_count(model) - batch_norm_count(folded) == 16
    assert folded.image_size == model.image_size
    assert folded.attribute_names == model.attribute_names
    expected, got = model(faces, training=False), folded(faces, training=False)
    assert set(got) == {"embedding", "attribute_logits"}
    for key in expected:
        assert got[key].dtype == expected[key].dtype
        assert np.abs(np.asarray(got[key]) - np.asarray(expected[key])).max() <= 1e-4, key
    # The folded model computes with its own copies of the folded layers only.
    assert any(layer.use_bias for layer in folded._flatten_layers()
               if isinstance(layer, keras.layers.Conv2D))
    assert not any(layer.use_bias for layer in model._flatten_layers()
                   if isinstance(layer, keras.layers.Conv2D))


def test_folded_imported_backbone(imported_backbone_path, faces):
    model = randomise_statistics(load_model(imported_backbone_path, allow_embedder=True))
    folded = fold_batch_norms(model)
    # Widths 8, 8, 16, 16: stem 1 + (bn2, bn3) x 4 blocks + the one shortcut conv (stage 3,
    # 8 -> 16; the others subsample) + the embedding's last BN = 11.
    assert folded.folded_batch_norms == 11
    expected, got = model(faces), folded(faces)
    assert list(got) == ["embedding"]
    assert np.abs(np.asarray(got["embedding"]) - np.asarray(expected["embedding"])).max() <= 1e-4


def test_folded_stage2_network_folds_inside_stage1(faces):
    from tiny_models import tiny_network

    from catface_keras.models.fusion import FusionModel

    keras.utils.set_random_seed(0)
    model = randomise_statistics(FusionModel(tiny_network(), fusion="concat"))
    folded = fold_batch_norms(model)
    # In the nested stage-1 feature network (widths 8, 8, 16, 16): stem 1 + (bn2, bn3) x 5
    # blocks + 1 shortcut conv (stage 3) + its embedding's last BN = 13; + the fused
    # embedding's last BN = 14.
    assert folded.folded_batch_norms == 14
    assert batch_norm_count(model) - batch_norm_count(folded) == 14
    expected, got = model(faces, training=False), folded(faces, training=False)
    for key in expected:
        assert np.abs(np.asarray(got[key]) - np.asarray(expected[key])).max() <= 1e-4, key


def test_a_batch_norm_that_is_not_the_only_reader_is_kept():
    inputs = keras.Input((8, 8, 3))
    convolved = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    normalised = batch_norm("bn")(convolved)
    # The conv's output is read twice: folding the BN would change the other reader's input.
    outputs = keras.layers.Add()([normalised, convolved])
    before = keras.layers.Conv2D(4, 1, name="after")(batch_norm("bn_first")(inputs))
    model = randomise_statistics(keras.Model(inputs, [outputs, before]))
    folded = fold_batch_norms(model)
    # Neither the shared conv's BN nor a BN *before* a conv folds.
    assert folded.folded_batch_norms == 0
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    for got, expected in zip(folded(x), model(x)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)


def test_a_subclassed_model_is_refused():
    class Custom(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(ValueError, match="must be a functional Keras model"):
        fold_batch_norms(Custom())
