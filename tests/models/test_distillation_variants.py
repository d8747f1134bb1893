"""Stage-1 distillation variants: feature maps, A-SKD with a frozen CBAM teacher."""

import keras
import numpy as np
import pytest

from catface_keras.degrade.askd import askd_low_resolution

from tiny_models import paired_batch, tiny_model


def test_cbam_model_exposes_two_maps_per_block_per_branch():
    model = tiny_model(block_attention="cbam", distillation="askd", branch_stage=2)
    fr, sb = model.distill_keys["fr"], model.distill_keys["sb"]
    # Two shared blocks plus two FR blocks; two SB blocks; channel + spatial map each.
    assert (len(fr), len(sb)) == (8, 4)
    shapes = [tuple(model.network.feature_network.output[key].shape) for key in fr[:2]]
    assert shapes == [(None, 8), (None, 16, 16, 1)]


def test_feature_distillation_compares_the_configured_stage():
    model = tiny_model(distillation="feature_l2", distillation_stage=2, branch_stage=3)
    (key,) = model.distill_keys["fr"]
    assert model.distill_keys["sb"] == ()
    assert tuple(model.network.feature_network.output[key].shape) == (None, 8, 8, 8)
    inputs, targets = paired_batch()
    features = model.network.feature_network(np.concatenate([inputs["hq"], inputs["lq"]]))
    losses = model.compute_stage1_losses(features, targets, 4, training=False)
    hq, lq = np.asarray(features[key][:4]), np.asarray(features[key][4:])
    assert float(losses["fr_distillation"]) == pytest.approx(np.mean((hq - lq) ** 2), rel=1e-4)
    per_branch = tiny_model(distillation="feature_cosine", distillation_stage=4, branch_stage=3)
    assert len(per_branch.distill_keys["sb"]) == 1


@pytest.mark.slow
def test_askd_student_learns_towards_a_frozen_teacher(tmp_path):
    keras.utils.set_random_seed(0)
    teacher = tiny_model(block_attention="cbam", distillation="askd", train_on="hq")
    teacher.compile(optimizer=keras.optimizers.SGD(0.01))
    logs = teacher.train_on_batch(*paired_batch(), return_dict=True)
    assert logs["fr_distillation"] == 0.0
    student = tiny_model(
        block_attention="cbam", distillation="askd", lq_images="askd_low_resolution",
        loss_weights={"distillation": 5.0},
    )
    student.set_teacher(teacher.network)
    student.compile(optimizer=keras.optimizers.SGD(0.01))
    before = [w.numpy().copy() for w in teacher.weights]
    logs = student.train_on_batch(*paired_batch(seed=1), return_dict=True)
    assert logs["fr_distillation"] > 0
    for old, new in zip(before, teacher.weights):
        np.testing.assert_array_equal(old, new.numpy())
    # The teacher is not part of the saved student.
    student.save(tmp_path / "student.keras")
    restored = keras.saving.load_model(tmp_path / "student.keras")
    assert restored.teacher is None and restored.lq_images == "askd_low_resolution"
    assert len(restored.weights) == len(student.weights)


def test_teacher_must_have_the_students_maps():
    student = tiny_model(block_attention="cbam", distillation="askd")
    with pytest.raises(ValueError, match="The teacher has no map"):
        student.set_teacher(tiny_model().network)
    with pytest.raises(ValueError, match="needs a network built with block_attention='cbam'"):
        tiny_model(distillation="askd")


def test_askd_low_resolution_copies_are_blocky_and_in_range():
    images = np.random.default_rng(3).uniform(0, 255, (6, 112, 112, 3)).astype("float32")
    low = np.asarray(askd_low_resolution(images, seed=0, blur_sigma=0.0))
    assert low.shape == images.shape and low.min() >= 0 and low.max() <= 255
    # A 14-56 px copy upsampled to 112 is smooth: neighbours differ far less.
    assert np.abs(np.diff(low, axis=1)).mean() < 0.5 * np.abs(np.diff(images, axis=1)).mean()
