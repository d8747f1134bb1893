"""Partial FC in training: one shard of class centres per replica.

On the two logical CPUs, stage 1 with `partial_fc_sample_rate=1.0` takes the
same steps as with the dense AdaFace head (the centres of each replica's
shard are the dense head's columns), saves all centres, and loads on any
number of replicas.
"""

import keras
import numpy as np
import pytest

from catface_keras.config import ConfigError, config_from_dict
from catface_keras.layers.partial_fc import PartialFC
from catface_keras.trainer import run_stages
from tiny_models import TINY_EXPERIMENT as TINY
from tiny_models import StopAfterFirstEpoch, paired_batch, tiny_model

# 9 classes on 2 replicas: shards of 5 columns, the second with one padding column.
CLASSES = 9


def sgd():
    # No clipping: the dense head's centres would count in the clipped norm.
    return keras.optimizers.SGD(0.01, momentum=0.9, weight_decay=5e-4)


def build(strategy, sample_rate):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tiny_model(num_classes=CLASSES, dropout=0.0, partial_fc_sample_rate=sample_rate)
        model.compile(optimizer=sgd())
    return model


def centres(model):
    head = model.adaface
    """`(num_classes, D)`, rows in class order, for either head."""
    return head.all_centres() if isinstance(head, PartialFC) else head.kernel.numpy().T


def batches(steps=3, pairs=8):
    for step in range(steps):
        inputs, targets = paired_batch(pairs, seed=step)
        identity = np.random.default_rng(step).integers(0, CLASSES, pairs)
        targets["identity"] = identity.astype("int32")
        yield inputs, targets


@pytest.mark.slow
def test_sample_rate_one_trains_as_the_dense_head(two_cpu_strategy):
    """Three steps, same global batches; tolerance 1e-4 relative (the softmax
    assembled from two replicas' partial sums, then SGD on it)."""
    dense = build(two_cpu_strategy, None)
    sharded = build(two_cpu_strategy, 1.0)
    # Same seed, same centres: drawn whole and split, whatever the replica count.
    for a, b in zip(dense.network.weights, sharded.network.weights):
        np.testing.assert_array_equal(b.numpy(), a.numpy())
    head = sharded.adaface
    assert head.centres.shape == (5, 12)
    per_replica = [v.numpy() for v in head.centres.value.values]
    np.testing.assert_array_equal(per_replica[0], dense.adaface.kernel.numpy().T[:5])
    np.testing.assert_array_equal(per_replica[1][:4], dense.adaface.kernel.numpy().T[5:])
    start = centres(dense)
    for inputs, targets in batches():
        dense_logs = dense.train_on_batch(inputs, targets, return_dict=True)
        sharded_logs = sharded.train_on_batch(inputs, targets, return_dict=True)
        assert sharded_logs["fr_loss"] == pytest.approx(dense_logs["fr_loss"], rel=1e-4)
    assert np.abs(centres(dense) - start).max() > 1e-3  # training moved the centres
    np.testing.assert_allclose(centres(sharded), centres(dense), rtol=1e-4, atol=1e-5)
    for a, b in zip(dense.network.weights, sharded.network.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    assert float(head.norm_mean.numpy()) == pytest.approx(float(dense.adaface.norm_mean.numpy()))


@pytest.mark.slow
def test_sampled_shards_update_only_scored_centres(two_cpu_strategy):
    keras.utils.set_random_seed(1)
    with two_cpu_strategy.scope():
        model = tiny_model(num_classes=40, dropout=0.0, partial_fc_sample_rate=0.2)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = centres(model)
    inputs, targets = paired_batch(4, seed=3)
    targets["identity"] = np.array([0, 7, 25, 39], "int32")
    logs = model.train_on_batch(inputs, targets, return_dict=True)
    assert np.isfinite(logs["loss"])
    changed = np.abs(centres(model) - before).max(axis=1) > 0
    # Each 20-column shard scores max(ceil(0.2 * 20), global batch 8) = 8 columns.
    assert changed[[0, 7, 25, 39]].all()
    assert 4 <= changed.sum() <= 16


@pytest.mark.slow
def test_saved_centres_load_on_one_or_two_replicas(two_cpu_strategy, tmp_path):
    model = build(two_cpu_strategy, 1.0)
    inputs, targets = next(batches(1))
    model.train_on_batch(inputs, targets)
    expected = centres(model)
    momentum = model.adaface._all_shards(model.adaface.momentum)
    assert np.abs(momentum).max() > 0
    path = tmp_path / "stage1_training.keras"
    model.save(path)
    alone = keras.saving.load_model(path)
    assert alone.adaface.centres.shape == (CLASSES, 12)
    np.testing.assert_array_equal(alone.adaface.centres.numpy(), expected)
    np.testing.assert_array_equal(alone.adaface.momentum.numpy(), momentum)
    with two_cpu_strategy.scope():
        again = keras.saving.load_model(path)
    np.testing.assert_array_equal(centres(again), expected)
    np.testing.assert_array_equal(
        again.adaface.centres.value.values[1].numpy()[:4], expected[5:]
    )


@pytest.mark.slow
def test_training_with_partial_fc_resumes_and_runs_stage2(tmp_path):
    """`loss.partial_fc_sample_rate` through the trainer: a killed run resumes
    to the uninterrupted run's centres and momentum (they live outside the
    optimizer, so the backup must hold them), and stage 2's fused head is a
    Partial FC too. Tolerance 1e-5: the same float32 ops in order."""
    config = config_from_dict(
        {**TINY, "loss": {"partial_fc_sample_rate": 1.0}, "stage2": {"epochs": 1}}
    )
    straight, _ = run_stages(config, tmp_path / "straight", stages=(1,), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        run_stages(config, tmp_path / "killed", stages=(1,), verbose=0,
                   callbacks=[StopAfterFirstEpoch()])
    resumed, _ = run_stages(config, tmp_path / "killed", stages=(1,), verbose=0)
    assert isinstance(resumed.adaface, PartialFC)
    for name in ("centres", "momentum"):
        np.testing.assert_allclose(
            getattr(resumed.adaface, name).numpy(), getattr(straight.adaface, name).numpy(),
            atol=1e-5, err_msg=name,
        )
    assert np.abs(resumed.adaface.momentum.numpy()).max() > 0
    fused, metrics = run_stages(config, tmp_path / "killed", stages=(2,), verbose=0)
    assert isinstance(fused.adaface, PartialFC)
    assert np.isfinite(metrics["stage2"]["verification"]["clean"]["accuracy"])


def test_partial_fc_config_errors():
    with pytest.raises(ConfigError, match=r"loss.partial_fc_sample_rate.*\(0, 1\]"):
        config_from_dict({"loss": {"partial_fc_sample_rate": 0}})
    with pytest.raises(ConfigError, match="index_diversion_weight"):
        config_from_dict({"loss": {"partial_fc_sample_rate": 0.1, "index_diversion_weight": 1}})
    with pytest.raises(ValueError, match="index_diversion_weight"):
        tiny_model(partial_fc_sample_rate=0.1, index_diversion_weight=1.0)
