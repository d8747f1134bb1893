import numpy as np
import pytest

from catface_keras.evaluation.attributes import attribute_accuracy
from catface_keras.evaluation.verification import (
    best_threshold_accuracy,
    cosine_scores,
    sample_verification_pairs,
    tar_at_far,
    verification_metrics,
)


def test_best_threshold_accuracy_hand_case():
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    same = np.array([True, True, True, False, False, False])
    # Best cut between 0.6 and 0.8 (or 0.2 and 0.3): 5 of 6 correct.
    accuracy, threshold = best_threshold_accuracy(scores, same)
    assert accuracy == pytest.approx(5 / 6)
    assert threshold in (pytest.approx(0.7), pytest.approx(0.25))
    perfect, threshold = best_threshold_accuracy([0.9, 0.8, 0.1], [True, True, False])
    assert perfect == 1.0 and 0.1 < threshold < 0.8


def test_best_threshold_never_splits_ties():
    accuracy, _ = best_threshold_accuracy([0.5, 0.5, 0.5, 0.5], [True, False, True, False])
    assert accuracy == 0.5


def test_tar_at_far_hand_case():
    impostor = np.linspace(0.0, 0.99, 100)  # highest 0.99, second 0.98
    genuine = np.array([0.985, 0.995, 0.5, 0.97])
    scores = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(4, bool), np.zeros(100, bool)])
    # FAR 1e-2 allows one impostor above the threshold: threshold = 0.98.
    assert tar_at_far(scores, same, 1e-2) == pytest.approx(0.5)
    # FAR 2e-2 allows two: threshold = 0.97 (not accepted at equality).
    assert tar_at_far(scores, same, 2e-2) == pytest.approx(0.5)
    assert tar_at_far(scores, same, 3e-2) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least 1000 impostor"):
        tar_at_far(scores, same, 1e-3)


def test_sampled_pairs_are_balanced_and_correct():
    identities = np.repeat(np.arange(20), 4)
    first, second = sample_verification_pairs(identities, 50, seed=0)[:2]
    same = sample_verification_pairs(identities, 50, seed=0)[2]
    assert same.sum() == 50 and (~same).sum() == 50
    np.testing.assert_array_equal(identities[first] == identities[second], same)
    assert np.all(first != second)


def test_verification_metrics_on_separable_embeddings():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 16))
    identities = np.repeat(np.arange(10), 5)
    embeddings = centres[identities] + 0.05 * rng.normal(size=(50, 16))
    first, second, same = sample_verification_pairs(identities, 100, seed=1)
    metrics = verification_metrics(embeddings[first], embeddings[second], same)
    assert metrics["accuracy"] == 1.0 and metrics["tar_at_far_1e-2"] == 1.0
    np.testing.assert_allclose(cosine_scores(embeddings, 3 * embeddings), 1.0, rtol=1e-6)


def test_attribute_accuracy_skips_unknown_labels():
    labels = np.array([[1, -1], [0, 1], [1, 0]])
    logits = np.array([[2.0, 5.0], [1.0, 1.0], [-1.0, -3.0]])
    accuracy = attribute_accuracy(labels, logits, ["Male", "Bald"])
    assert accuracy == {"Male": pytest.approx(1 / 3), "Bald": 1.0}
