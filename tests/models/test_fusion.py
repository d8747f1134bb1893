import keras
import numpy as np
import pytest

from catface_keras.models import FusionModel, FusionTraining, MultiBranchModel
from catface_keras.models.fusion import DEFAULT_FUSION_OPTIONS

IMAGE_SIZE = 32


def _stage1(seed=0):
    keras.utils.set_random_seed(seed)
    return MultiBranchModel(backbone="ir_tiny", image_size=IMAGE_SIZE, embedding_dim=16, dropout=0.0)


def _training(stage1, train_stage1=False, stage1_lr_multiplier=0.1, **fusion):
    network = FusionModel(stage1, **fusion)
    return FusionTraining(
        network, num_classes=6, train_stage1=train_stage1, stage1_lr_multiplier=stage1_lr_multiplier
    )


def _batch(seed=0, pairs=4):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(2, pairs, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    return ({"hq": images[0], "lq": images[1]}, {"identity": np.arange(pairs) % 6})


def _snapshot(variables):
    return {v.path: np.array(v.numpy()) for v in variables}


@pytest.mark.slow
def test_frozen_stage1_is_unchanged_by_a_stage2_step():
    stage1 = _stage1()
    model = _training(stage1, fusion="catf")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    stage1_before = _snapshot(stage1.weights)  # BN moving statistics included
    fusion = model.network.get_layer("fusion")
    fusion_before = _snapshot(fusion.trainable_weights)
    model.train_on_batch(*_batch())
    assert stage1.trainable_weights == []
    for path, value in _snapshot(stage1.weights).items():
        np.testing.assert_array_equal(value, stage1_before[path], err_msg=path)
    moved = [p for p, v in _snapshot(fusion.trainable_weights).items()
             if not np.array_equal(v, fusion_before[p])]
    assert moved, "the fusion module did not learn"


@pytest.mark.slow
def test_fine_tuning_scales_stage1_steps_by_the_multiplier():
    deltas = {}
    for multiplier in (1.0, 0.25):
        keras.utils.set_random_seed(1)
        stage1 = _stage1(seed=1)
        model = _training(stage1, fusion="add", dropout=0.0, train_stage1=True,
                          stage1_lr_multiplier=multiplier)
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        kernel = stage1.get_layer("fr_stage4_block1_conv1").kernel
        before = kernel.numpy().copy()
        model.train_on_batch(*_batch(seed=2))
        deltas[multiplier] = kernel.numpy() - before
    assert np.abs(deltas[1.0]).max() > 0
    np.testing.assert_allclose(deltas[0.25], 0.25 * deltas[1.0], rtol=1e-3, atol=1e-7)


def test_fine_tuning_freezes_exactly_the_stage1_head_objects():
    stage1 = _stage1()
    model = _training(stage1, fusion="add", train_stage1=True)
    heads = {id(layer) for layer in stage1.head_layers}
    assert {layer.name for layer in stage1.head_layers} >= {
        "embedding_dense", "embedding_bn", "attribute_logits"
    }
    for layer in stage1._flatten_layers(include_self=False):
        if id(layer) in heads:
            assert not layer.trainable, layer.name
    trainable_stage1 = {v.path for v in stage1.trainable_variables}
    assert any("fr_stage4" in path for path in trainable_stage1)
    assert not any("embedding" in path or "attribute" in path or "adaface" in path
                   for path in trainable_stage1)
    assert len(model.trainable_variables) > len(stage1.trainable_variables)


@pytest.mark.parametrize("fusion", ["catf", "concat"])
def test_keras_round_trip_keeps_outputs_config_and_frozen_state(fusion, tmp_path):
    model = _training(_stage1(), fusion=fusion, fusion_options={"num_heads": 2})
    model.compile(optimizer="sgd")
    model.train_on_batch(*_batch())  # moves BN statistics and AdaFace state away from init
    images = _batch(seed=3)[0]["hq"]
    path = tmp_path / "stage2_training.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, FusionTraining)
    assert restored.get_config() == model.get_config()
    before, after = model(images), restored(images)
    assert set(after) == {"embedding", "attribute_logits"}
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-5)
    # Loading passes trainable=True to the Functional constructor, which must
    # not thaw stage 1: the same variables train, and the optimizer state fits.
    assert restored.network.stage1.trainable_weights == []
    assert [v.path for v in restored.trainable_variables] == [
        v.path for v in model.trainable_variables
    ]
    assert float(restored.adaface.norm_mean) == pytest.approx(float(model.adaface.norm_mean))
    network = restored.network
    assert network.image_size == IMAGE_SIZE
    assert network.attribute_names == model.network.stage1.attribute_names
    # The inference file: the network alone, the same outputs.
    model.network.save(tmp_path / "stage2.keras")
    alone = keras.saving.load_model(tmp_path / "stage2.keras")
    assert isinstance(alone, FusionModel) and "train_stage1" not in alone.get_config()
    for key in before:
        np.testing.assert_allclose(alone(images)[key], before[key], rtol=1e-5, atol=1e-5)


def test_inference_contract_matches_stage1():
    stage1 = _stage1()
    model = FusionModel(stage1, fusion="se", embedding_dim=24)
    images = _batch()[0]["hq"]
    outputs = model(images)
    assert outputs["embedding"].shape == (4, 24)
    np.testing.assert_allclose(outputs["attribute_logits"], stage1(images)["attribute_logits"],
                               rtol=1e-5, atol=1e-5)
    features = model.feature_network(images)
    np.testing.assert_allclose(features["stage1_embedding"], stage1(images)["embedding"],
                               rtol=1e-5, atol=1e-5)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`fusion` must be one of"):
        FusionModel(_stage1(), fusion="mean")
    with pytest.raises(ValueError, match="`stage1` must be a MultiBranchModel"):
        FusionModel(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="Unknown fusion option 'heads'"):
        FusionModel(_stage1(), fusion_options={"heads": 2})
    with pytest.raises(ValueError, match="stage1_lr_multiplier=-1"):
        _training(_stage1(), stage1_lr_multiplier=-1)


def test_config_holds_the_fusion_options_with_the_same_defaults():
    from catface_keras.config import Stage2Config

    assert set(DEFAULT_FUSION_OPTIONS) <= {f for f in Stage2Config.__dataclass_fields__}
    defaults = Stage2Config()
    assert {k: getattr(defaults, k) for k in DEFAULT_FUSION_OPTIONS} == DEFAULT_FUSION_OPTIONS
