import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.models.stage1_training import STAGE1_LOSS_TERMS
from tiny_models import SIZE, paired_batch, tiny_model, tiny_network


def test_outputs_and_feature_network_shapes():
    model = tiny_network(branch_stage=2)
    images = np.zeros((3, SIZE, SIZE, 3), "float32")
    outputs = model(images)
    assert set(outputs) == {"embedding", "attribute_logits"}
    assert outputs["embedding"].shape == (3, 12)
    assert outputs["attribute_logits"].shape == (3, 5)
    features = model.feature_network(images)
    assert features["fr_attention"].shape == (3, 4, 4)
    assert features["sb_value"].shape == (3, 4, 16)
    assert features["fr_features"].shape == (3, 2, 2, 16)
    # branch_stage=2: stages 3 and 4 exist once per branch, stages 1 and 2 once.
    names = {layer.name for layer in model.feature_network.layers}
    assert {"fr_stage3_block1_add", "sb_stage3_block1_add", "stage2_block1_add"} <= names
    assert "stage3_block1_add" not in names
    # Every stage's output map, a shared stage under "fr" only.
    assert features["fr_stage2"].shape == (3, 8, 8, 8)
    assert features["sb_stage3"].shape == (3, 4, 4, 16) and "sb_stage2" not in features


def test_fit_reports_every_loss_term_and_updates_adaface_state():
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    dataset = tf.data.Dataset.from_tensors(paired_batch()).repeat(2)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert set(STAGE1_LOSS_TERMS) <= set(history.history)
    for term in STAGE1_LOSS_TERMS:
        assert np.isfinite(history.history[term][0])
    logs = model.evaluate(dataset, return_dict=True, verbose=0)
    assert set(STAGE1_LOSS_TERMS) <= set(logs)
    assert float(model.adaface.norm_mean) != 20.0


def test_total_loss_combines_terms_with_weights():
    model = tiny_model(loss_weights={"fr": 2.0, "sb": 0.5, "distillation": 3.0})
    inputs, targets = paired_batch()
    features = model.network.feature_network(np.concatenate([inputs["hq"], inputs["lq"]]))
    losses = model.compute_stage1_losses(features, targets, 4, training=False)
    expected = 2.0 * (losses["fr_loss"] + 3.0 * losses["fr_distillation"]) + 0.5 * (
        losses["sb_loss"] + 3.0 * losses["sb_distillation"]
    )
    assert float(losses["loss"]) == pytest.approx(float(expected), rel=1e-6)
    # Identical HQ and LQ: nothing to distil.
    same = model.network.feature_network(np.concatenate([inputs["hq"], inputs["hq"]]))
    zero = model.compute_stage1_losses(same, targets, 4, training=False)
    assert float(zero["fr_distillation"]) == pytest.approx(0.0, abs=1e-5)
    assert float(zero["sb_distillation"]) == pytest.approx(0.0, abs=1e-5)


def test_missing_attribute_labels_give_zero_sb_loss():
    model = tiny_model()
    inputs, targets = paired_batch()
    targets["attributes"] = -np.ones_like(targets["attributes"])
    features = model.network.feature_network(np.concatenate([inputs["hq"], inputs["lq"]]))
    losses = model.compute_stage1_losses(features, targets, 4, training=False)
    assert float(losses["sb_loss"]) == 0.0


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model(dropout=0.3, distillation="l2", attribute_weights=[1, 2, 1, 1, 1])
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.fit(tf.data.Dataset.from_tensors(paired_batch()), verbose=0)
    images = paired_batch(seed=1)[0]["hq"]
    path = tmp_path / "stage1.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.get_config() == model.get_config()
    before, after = model.predict(images, verbose=0), restored.predict(images, verbose=0)
    np.testing.assert_array_equal(before["embedding"], after["embedding"])
    np.testing.assert_array_equal(before["attribute_logits"], after["attribute_logits"])
    assert float(restored.adaface.norm_mean) == float(model.adaface.norm_mean)
    # The network alone: an inference file with no training argument in it.
    model.network.save(tmp_path / "network.keras")
    network = keras.models.load_model(tmp_path / "network.keras")
    assert type(network).__name__ == "MultiBranchModel"
    assert not {"num_classes", "adaface", "distillation", "attribute_weights"} & set(
        network.get_config()
    )
    np.testing.assert_array_equal(
        network.predict(images, verbose=0)["embedding"], before["embedding"]
    )


def test_argument_errors():
    with pytest.raises(ValueError, match="branch_stage=4"):
        tiny_model(branch_stage=4)
    with pytest.raises(ValueError, match="distillation='kl'"):
        tiny_model(distillation="kl")
    with pytest.raises(ValueError, match="Unknown key 'lambda'"):
        tiny_model(loss_weights={"lambda": 1.0})
    with pytest.raises(ValueError, match="attribute_weights"):
        tiny_model(attribute_weights=[1.0, 2.0])


def _train_one_step(strategy, initial_weights, batch):
    with strategy.scope():
        model = tiny_model(dropout=0.0, synchronized_batch_norm=True)
        model.set_weights(initial_weights)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    return {k: v[0] for k, v in history.history.items()}, model.get_weights()


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    """One step on two logical CPUs equals one step on one device.

    Tolerance: 1e-4 relative on the losses, 1e-5 absolute on the weights
    (float32 all-reduce sums in another order than a single-device reduction).
    """
    keras.utils.set_random_seed(0)
    initial_weights = tiny_model(dropout=0.0, synchronized_batch_norm=True).get_weights()
    batch = paired_batch(batch=8)
    single_logs, single_weights = _train_one_step(
        tf.distribute.OneDeviceStrategy("/cpu:0"), initial_weights, batch
    )
    mirrored = two_cpu_strategy
    assert mirrored.num_replicas_in_sync == 2
    mirrored_logs, mirrored_weights = _train_one_step(mirrored, initial_weights, batch)
    for term in STAGE1_LOSS_TERMS:
        assert mirrored_logs[term] == pytest.approx(single_logs[term], rel=1e-4), term
    changed = 0
    for before, single, mirror in zip(initial_weights, single_weights, mirrored_weights):
        np.testing.assert_allclose(mirror, single, atol=1e-5, rtol=1e-4)
        changed += not np.allclose(before, single)
    assert changed > 10
