import numpy as np
import pytest
import tensorflow as tf

from catface_keras.losses.distillation import attention_distillation_loss, distillation_distance


def test_zero_for_identical_and_positive_otherwise():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4, 4)).astype("float32")
    v = rng.normal(size=(3, 4, 2)).astype("float32")
    assert float(attention_distillation_loss(a, a, v, v)) == pytest.approx(0.0, abs=1e-6)
    other = rng.normal(size=a.shape).astype("float32")
    assert float(attention_distillation_loss(a, other, v, v)) > 0.05


def test_cosine_is_scale_invariant_and_l2_is_not():
    a = np.array([[1.0, 2.0, 3.0]], "float32")
    assert float(distillation_distance(a, 5 * a, "cosine")) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_distance(a, 5 * a, "l2")) == pytest.approx(np.mean((4 * a) ** 2))


def test_hand_computed_values_per_example_then_mean():
    hq = np.array([[1.0, 0.0], [1.0, 1.0]], "float32")
    lq = np.array([[0.0, 1.0], [1.0, 1.0]], "float32")
    # Example 1: orthogonal (1 - 0); example 2: identical (1 - 1).
    assert float(distillation_distance(hq, lq)) == pytest.approx(0.5)
    # Example 1: mean of (1, 1) squared differences; example 2: 0.
    assert float(distillation_distance(hq, lq, "l2")) == pytest.approx(0.5)


def test_no_gradient_through_hq_side():
    hq = tf.Variable(np.random.default_rng(1).normal(size=(2, 3, 3)).astype("float32"))
    lq = tf.Variable(np.random.default_rng(2).normal(size=(2, 3, 3)).astype("float32"))
    for kind in ("cosine", "l2"):
        with tf.GradientTape() as tape:
            loss = attention_distillation_loss(hq, lq, hq, lq, kind=kind)
        grad_hq, grad_lq = tape.gradient(loss, [hq, lq])
        assert grad_hq is None
        assert float(tf.reduce_sum(tf.abs(grad_lq))) > 0


def test_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind='kl'"):
        distillation_distance(np.ones((1, 2)), np.ones((1, 2)), kind="kl")


def test_askd_loss_is_zero_for_identical_maps_and_sums_blocks():
    from catface_keras.losses.distillation import summed_map_distillation_loss

    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(3, 8)).astype("float32"),
            rng.normal(size=(3, 4, 4, 1)).astype("float32")]
    assert float(summed_map_distillation_loss(maps, maps)) == pytest.approx(0.0, abs=1e-6)
    flipped = [-m for m in maps]
    # Opposite directions: 1 - (-1) = 2 per map, summed over the two maps.
    assert float(summed_map_distillation_loss(maps, flipped)) == pytest.approx(4.0, abs=1e-5)
    with pytest.raises(ValueError, match="same number of attention maps"):
        summed_map_distillation_loss(maps, maps[:1])


def test_askd_loss_sends_no_gradient_into_the_teacher():
    from catface_keras.losses.distillation import summed_map_distillation_loss

    rng = np.random.default_rng(2)
    teacher = [tf.Variable(rng.normal(size=(2, 6)).astype("float32"))]
    student = [tf.Variable(rng.normal(size=(2, 6)).astype("float32"))]
    with tf.GradientTape() as tape:
        loss = summed_map_distillation_loss(teacher, student)
    teacher_grad, student_grad = tape.gradient(loss, [teacher[0], student[0]])
    assert teacher_grad is None
    assert float(tf.reduce_max(tf.abs(student_grad))) > 0
