import numpy as np
import pytest
from sklearn.model_selection import KFold

from catface_keras.evaluation.attributes import attribute_accuracy
from catface_keras.evaluation.verification import (
    kfold_accuracy,
    pair_distances,
    sample_verification_pairs,
    verification_summary,
)


def insightface_reference(embeddings, issame, num_folds=10):
    """insightface's `evaluate()` accuracy, written from its protocol's description.

    Embeddings `2k` and `2k + 1` form pair `k`; distance = squared L2 of the
    (already normalised) embeddings; thresholds 0, 0.01, ..., 3.99; "same" when
    distance < threshold; folds by scikit-learn's unshuffled KFold; each fold's
    threshold is the first (lowest) with the best accuracy on the other folds.
    """
    first, second = embeddings[0::2], embeddings[1::2]
    distance = ((first - second) ** 2).sum(axis=1)
    thresholds = np.arange(0, 4, 0.01)
    accuracies = []
    for train, test in KFold(n_splits=num_folds, shuffle=False).split(np.arange(len(issame))):
        best, best_accuracy = None, -1.0
        for threshold in thresholds:
            predicted = distance[train] < threshold
            accuracy = (predicted == issame[train]).sum() / len(train)
            if accuracy > best_accuracy:  # strictly better: the first maximum is kept
                best, best_accuracy = threshold, accuracy
        accuracies.append(((distance[test] < best) == issame[test]).sum() / len(test))
    return np.mean(accuracies), np.std(accuracies)


def _fused_embeddings(rng, num_pairs, dim, noise, distinct=None):
    """Sums of two random embeddings (as flip fusion), L2-normalised, pairs alternating
    roughly genuine / impostor. With `distinct`, the pairs repeat `distinct` pairs
    with labels drawn independently: many pairs share a distance, genuine and impostor
    alike (ties)."""
    count = distinct or num_pairs
    raw = rng.normal(size=(2 * count, dim)) + rng.normal(size=(2 * count, dim))
    close = rng.random(count) < 0.5
    raw[1::2][close] = raw[0::2][close] + noise * rng.normal(size=(close.sum(), dim))
    embeddings = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    if distinct is None:
        return embeddings, close
    chosen = rng.integers(0, distinct, num_pairs)
    rows = np.stack([2 * chosen, 2 * chosen + 1], axis=1).ravel()
    issame = np.where(rng.random(num_pairs) < 0.8, close[chosen], ~close[chosen])
    return embeddings[rows], issame


@pytest.mark.parametrize("num_pairs, dim, noise, distinct", [
    (12, 4, 1.0, None),  # one or two pairs per fold: plateaus tens of thresholds wide
    (25, 3, 1.5, None),
    (37, 8, 0.8, 5),  # five distinct distances among 37 pairs: ties across labels
    (60, 4, 1.0, 12),
    (600, 16, 1.2, None),
])
def test_kfold_accuracy_equals_insightface_evaluate(num_pairs, dim, noise, distinct):
    rng = np.random.default_rng(num_pairs)
    embeddings, issame = _fused_embeddings(rng, num_pairs, dim, noise, distinct)
    expected_mean, expected_std = insightface_reference(embeddings, issame)
    distances = pair_distances(embeddings[0::2], embeddings[1::2])
    result = kfold_accuracy(distances, issame)
    assert abs(result["accuracy"] - expected_mean) <= 1e-12
    assert abs(result["accuracy_std"] - expected_std) <= 1e-12
    summary, _ = verification_summary(embeddings[0::2], embeddings[1::2], issame, fars=(1e-1,))
    assert abs(summary["accuracy"] - expected_mean) <= 1e-12
    if distinct is not None:
        tied = [d for d in np.unique(distances) if len(set(issame[distances == d])) == 2]
        assert tied  # some distance is both a genuine and an impostor pair's


def test_tie_break_keeps_the_strictest_threshold():
    # Genuine pairs at distance 0.2, impostors at 1.4: every threshold in
    # (0.2, 1.4] is equally right on the training folds. insightface keeps the
    # first, 0.21, which rejects a held-out genuine pair at 0.5; the most
    # lenient choice (1.4) would accept it.
    distances = np.array([0.2, 1.4] * 9 + [0.5, 1.4])
    same = np.array([True, False] * 10)
    result = kfold_accuracy(distances, same)
    assert result["fold_thresholds"][9] == pytest.approx(0.21)
    assert result["fold_accuracies"][9] == 0.5
    assert result["accuracy"] == pytest.approx(0.95)


def test_exact_threshold_search_hand_case():
    # 12 pairs in 10 contiguous folds: {0, 1}, {2, 3}, {4}, ..., {11}. Genuine
    # pairs at distance 0.2 and impostors at 1.4, except pair 1 (genuine, 1.8)
    # and pair 11 (impostor, 0.1). Whatever fold is held out, the other nine
    # are best cut at the midpoint 0.8 (exact) or at 0.21 (insightface's grid),
    # so fold 0 gets pair 1 wrong (1/2 right) and fold 9 its only pair (0/1).
    same = np.array([1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0], bool)
    distances = np.where(same, 0.2, 1.4)
    distances[1], distances[11] = 1.8, 0.1
    expected = [0.5, 1, 1, 1, 1, 1, 1, 1, 1, 0.0]
    for search, threshold in (("exact", 0.8), ("insightface", 0.21)):
        result = kfold_accuracy(distances, same, threshold_search=search)
        np.testing.assert_allclose(result["fold_accuracies"], expected)
        np.testing.assert_allclose(result["fold_thresholds"], threshold)
        assert result["accuracy"] == pytest.approx(0.85)
        assert result["accuracy_std"] == pytest.approx(np.std(expected))
    with pytest.raises(ValueError, match="threshold_search"):
        kfold_accuracy(distances, same, threshold_search="best")


def test_exact_search_uses_cuts_the_grid_cannot():
    # Genuine at 0.101 and impostors at 0.104: no 0.01 grid point separates
    # them, a midpoint does.
    distances = np.array([0.101, 0.104] * 10)
    same = np.array([True, False] * 10)
    assert kfold_accuracy(distances, same, threshold_search="exact")["accuracy"] == 1.0
    assert kfold_accuracy(distances, same)["accuracy"] == 0.5


def test_folds_given_per_pair_replace_contiguous_folds():
    distances = np.array([0.2, 1.4, 0.2, 1.4, 1.9, 0.1])
    same = np.array([True, False, True, False, True, False])
    # Fold 1 holds the two odd pairs, which fold 0's cut (0.21) gets wrong. Fold 0
    # is cut by them: rejecting everything (threshold 0, the first of the best)
    # gets its genuine pairs wrong.
    result = kfold_accuracy(distances, same, folds=[0, 0, 0, 0, 1, 1])
    assert result["fold_accuracies"] == [0.5, 0.0]
    assert result["fold_thresholds"] == [0.0, pytest.approx(0.21)]
    with pytest.raises(ValueError, match="num_folds"):
        kfold_accuracy(distances, same, num_folds=7)


def test_verification_summary_keys():
    rng = np.random.default_rng(0)
    first = rng.normal(size=(400, 8))
    same = rng.random(400) < 0.5
    second = np.where(same[:, None], first + 0.5 * rng.normal(size=(400, 8)),
                      rng.normal(size=(400, 8)))
    summary, scores = verification_summary(first, second, same)
    for key in ("accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e-1", "tar_at_far_1e-6"):
        assert key in summary
    assert summary["tar_at_far_1e-6"] is None and summary["tar_at_far_1e-1"] > 0.5
    assert summary["num_pairs"] == 400 and "1e-6, 1e-5, 1e-4, 1e-3 not" in summary["notes"][0]
    # Cosine score and squared distance of unit vectors: d = 2 - 2 cos.
    np.testing.assert_allclose(pair_distances(first, second), 2 - 2 * scores, atol=1e-12)


def test_sampled_pairs_are_balanced_and_correct():
    identities = np.repeat(np.arange(20), 4)
    first, second, same = sample_verification_pairs(identities, 50, seed=0)
    assert same.sum() == 50 and (~same).sum() == 50
    np.testing.assert_array_equal(identities[first] == identities[second], same)
    assert np.all(first != second)
    with pytest.raises(ValueError, match="Only one identity"):
        sample_verification_pairs(np.zeros(4), 5)


def test_attribute_accuracy_skips_unknown_labels():
    labels = np.array([[1, -1], [0, 1], [1, 0]])
    logits = np.array([[2.0, 5.0], [1.0, 1.0], [-1.0, -3.0]])
    accuracy = attribute_accuracy(labels, logits, ["Male", "Bald"])
    assert accuracy == {"Male": pytest.approx(1 / 3), "Bald": 1.0}
