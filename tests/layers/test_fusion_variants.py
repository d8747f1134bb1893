"""Every fusion layer behind the common `[fr, sb] -> map` interface."""


import keras
import numpy as np
import pytest

from catface_keras.models.fusion import FUSION_KINDS, fusion_layer

SHAPES = [(2, 2, 8), (3, 3, 16), (4, 2, 12)]
DOUBLE_WIDTH = {"catf", "concat", "se"}


def _classifier(kind, shape, **options):
    fr = keras.Input(shape, name="fr")
    sb = keras.Input(shape, name="sb")
    fused = fusion_layer(kind, options)([fr, sb])
    logits = keras.layers.Dense(3)(keras.layers.Flatten()(fused))
    return keras.Model([fr, sb], logits), fused


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", FUSION_KINDS)
def test_fusion_builds_trains_and_round_trips(kind, shape, tmp_path):
    keras.utils.set_random_seed(0)
    model, fused = _classifier(kind, shape)
    height, width, channels = shape
    expected_channels = 2 * channels if kind in DOUBLE_WIDTH else channels
    assert tuple(fused.shape) == (None, height, width, expected_channels)

    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(4, *shape)).astype("float32") for _ in range(2)]
    labels = np.array([0, 1, 2, 1])
    fusion = model.get_layer("fusion")
    before = [w.numpy().copy() for w in fusion.trainable_weights]
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    loss = model.train_on_batch(inputs, labels)
    assert np.isfinite(loss)
    changed = [not np.allclose(b, a.numpy()) for b, a in zip(before, fusion.trainable_weights)]
    assert all(changed) if kind in ("concat", "add") else any(changed)

    path = tmp_path / f"{kind}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(model.predict(inputs, verbose=0), restored.predict(inputs, verbose=0),
                               rtol=1e-6, atol=1e-6)
    assert restored.get_layer("fusion").get_config() == fusion.get_config()


def test_catf_without_residuals_is_the_literal_form():
    model, _ = _classifier("catf", (3, 3, 8), residual=False, identity_init=False)
    fusion = model.get_layer("fusion")
    assert not fusion.residual and not fusion.caf.residual
    assert not any(layer.residual for layer in fusion.mffnl.values())


@pytest.mark.parametrize("switch", ["use_mffnl", "use_caf"])
def test_catf_ablations_drop_their_step(switch):
    full, _ = _classifier("catf", (3, 3, 8))
    ablated, fused = _classifier("catf", (3, 3, 8), **{switch: False})
    names = {w.path.split("/")[1] for w in ablated.get_layer("fusion").weights}
    dropped = {"use_mffnl": {"fr_mffnl", "sb_mffnl"}, "use_caf": {"caf"}}[switch]
    assert not names & dropped
    assert tuple(fused.shape) == (None, 3, 3, 16)
    assert ablated.count_params() < full.count_params()


def test_unknown_fusion_and_option_are_refused():
    with pytest.raises(ValueError, match="`fusion` must be one of"):
        fusion_layer("sum")
    with pytest.raises(ValueError, match="Unknown fusion option 'heads'"):
        fusion_layer("catf", {"heads": 2})
