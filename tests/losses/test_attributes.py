import numpy as np
import pytest

from catface_keras.losses.attributes import masked_attribute_bce


def bce(label, logit):
    p = 1 / (1 + np.exp(-logit))
    return -(label * np.log(p) + (1 - label) * np.log(1 - p))


def test_matches_hand_computation_per_attribute_mean():
    labels = np.array([[1, 0], [0, -1], [1, 1]])
    logits = np.array([[2.0, -1.0], [0.5, 3.0], [-1.0, 0.2]], "float32")
    first = np.mean([bce(1, 2.0), bce(0, 0.5), bce(1, -1.0)])
    second = np.mean([bce(0, -1.0), bce(1, 0.2)])
    assert float(masked_attribute_bce(labels, logits)) == pytest.approx(first + second, rel=1e-5)
    weighted = masked_attribute_bce(labels, logits, attribute_weights=[2.0, 0.5])
    assert float(weighted) == pytest.approx(2 * first + 0.5 * second, rel=1e-5)


def test_masked_labels_contribute_nothing():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 2, size=(16, 5))
    logits = rng.normal(size=(16, 5)).astype("float32")
    changed = logits.copy()
    changed[labels == -1] = rng.normal(size=(labels == -1).sum()) * 100
    assert float(masked_attribute_bce(labels, changed)) == pytest.approx(
        float(masked_attribute_bce(labels, logits)), rel=1e-6
    )
    # A label of -1 is not a negative: it differs from labelling it 0.
    as_negative = np.where(labels == -1, 0, labels)
    assert float(masked_attribute_bce(as_negative, logits)) != pytest.approx(
        float(masked_attribute_bce(labels, logits))
    )


def test_fully_masked_attribute_gives_zero():
    labels = np.full((4, 2), -1)
    assert float(masked_attribute_bce(labels, np.ones((4, 2), "float32"))) == 0.0


def test_positive_weights_scale_positive_terms():
    labels = np.array([[1], [0]])
    logits = np.array([[0.3], [0.7]], "float32")
    expected = (3.0 * bce(1, 0.3) + bce(0, 0.7)) / 2
    got = masked_attribute_bce(labels, logits, positive_weights=[3.0])
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_stable_for_large_logits():
    labels = np.array([[1, 0]])
    logits = np.array([[-200.0, 200.0]], "float32")
    assert float(masked_attribute_bce(labels, logits)) == pytest.approx(400.0, rel=1e-5)
