import numpy as np
import pytest

from catface_keras.evaluation.identification import (
    DISTRACTOR_LABEL,
    grouped_rank1,
    match_ranks,
    rank_accuracies,
)
from catface_keras.evaluation.templates import (
    template_features,
    template_pairs,
    template_verification,
)
from catface_keras.evaluation.verification import kfold_accuracy, verification_summary


def test_kfold_accuracy_hand_case():
    # 12 pairs in 10 contiguous folds: {0, 1}, {2, 3}, {4}, {5}, ..., {11}.
    # Genuine pairs score 0.9 and impostors 0.2, except pair 1 (genuine, 0.1)
    # and pair 11 (impostor, 0.95). Whatever fold is held out, the other nine
    # are best cut between 0.2 and 0.9 (threshold 0.55), so fold 0 gets pair 1
    # wrong (1/2 right) and fold 9 gets its only pair wrong (0/1).
    same = np.array([1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0], bool)
    scores = np.where(same, 0.9, 0.2)
    scores[1], scores[11] = 0.1, 0.95
    result = kfold_accuracy(scores, same, num_folds=10)
    expected = [0.5, 1, 1, 1, 1, 1, 1, 1, 1, 0.0]
    np.testing.assert_allclose(result["fold_accuracies"], expected)
    np.testing.assert_allclose(result["fold_thresholds"], 0.55)
    assert result["accuracy_mean"] == pytest.approx(0.85)
    expected_std = np.sqrt(np.mean((np.array(expected) - 0.85) ** 2))
    assert result["accuracy_std"] == pytest.approx(expected_std)


def test_kfold_threshold_comes_from_the_other_folds():
    # Four folds of one pair. Held out fold 3 (a genuine 0.3), the others put
    # the cut between 0.2 and 0.8, which rejects it; best-on-all would not.
    scores = np.array([0.8, 0.2, 0.1, 0.3])
    same = np.array([True, False, False, True])
    result = kfold_accuracy(scores, same, num_folds=4)
    assert result["fold_accuracies"][3] == 0.0
    assert result["fold_thresholds"][3] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="num_folds"):
        kfold_accuracy(scores, same, num_folds=5)


def test_verification_summary_keys():
    rng = np.random.default_rng(0)
    same = rng.random(400) < 0.5
    summary = verification_summary(rng.normal(same, 0.3), same)
    keys = ("accuracy_mean", "accuracy_std", "auc", "eer", "tar_at_far_1e-1", "tar_at_far_1e-6")
    for key in keys:
        assert key in summary
    assert summary["tar_at_far_1e-6"] is None and summary["tar_at_far_1e-1"] > 0.5
    assert summary["num_pairs"] == 400 and "1e-6, 1e-5, 1e-4, 1e-3 not" in summary["notes"][0]


def test_template_feature_is_the_normalised_mean_of_normalised_features():
    embeddings = np.array([[3.0, 0.0], [0.0, 0.5], [0.0, -2.0], [1.0, 1.0]])
    templates, features = template_features(embeddings, [7, 7, 2, 7])
    np.testing.assert_array_equal(templates, [2, 7])
    # Template 7: mean of (1, 0), (0, 1), (0.707, 0.707) = (0.569, 0.569) -> (0.707, 0.707).
    np.testing.assert_allclose(features[1], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(features[0], [0.0, -1.0])
    # Unequal norms do not weight the mean: (10, 0) and (0, 1) -> 45 degrees.
    _, features = template_features(np.array([[10.0, 0.0], [0.0, 1.0]]), [0, 0])
    np.testing.assert_allclose(features[0], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)


def test_template_verification_scores_template_pairs():
    embeddings = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 0.05]])
    template_ids = np.array([0, 0, 1, 1, 2])
    first, second, same = template_pairs(np.array([5, 6, 5]))  # templates 0 and 2 are person 5
    np.testing.assert_array_equal(first, [0, 0, 1])
    np.testing.assert_array_equal(same, [False, True, False])
    summary, scores = template_verification(embeddings, template_ids, first, second, same,
                                            fars=(1e-1,))
    assert scores[1] > 0.99 and scores[0] < 0.2
    assert summary["num_templates"] == 3 and summary["auc"] == 1.0


def test_template_pairs_sample_when_too_many():
    identities = np.repeat(np.arange(50), 2)
    first, second, same = template_pairs(identities, max_pairs=500, seed=0)
    assert same.sum() == 50  # every genuine pair kept
    assert 400 < len(same) <= 500
    np.testing.assert_array_equal(identities[first] == identities[second], same)


def test_match_ranks_hand_gallery():
    # Gallery: person 0 (two images), person 1, and two distractors.
    gallery = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.0]])
    gallery_labels = np.array([0, 0, 1, DISTRACTOR_LABEL, DISTRACTOR_LABEL])
    probes = np.array([
        [1.0, 0.05],  # nearest is person 0's first image: rank 1
        [0.75, 0.66],  # the distractor (0.8, 0.6) beats person 0's best, (0.6, 0.8): rank 2
        [0.9, 0.45],  # person 1 is behind person 0 and the distractor: rank 3
    ])
    probe_labels = np.array([0, 0, 1])
    ranks = match_ranks(probes, probe_labels, gallery, gallery_labels)
    normalised = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    cosine = normalised @ gallery.T
    assert cosine[1, 3] > cosine[1, 1] > cosine[1, 0]  # the distractor outranks the mate
    np.testing.assert_array_equal(ranks, [1, 2, 3])
    accuracies = rank_accuracies(ranks, (1, 2, 5))
    expected = {"rank_1": pytest.approx(1 / 3), "rank_2": pytest.approx(2 / 3), "rank_5": 1.0}
    assert accuracies == expected
    assert grouped_rank1(ranks, np.array(["far", "near", "near"])) == {"far": 1.0, "near": 0.0}


def test_match_ranks_ties_count_against_the_probe_and_mates_are_required():
    gallery = np.array([[1.0, 0.0], [1.0, 0.0]])
    ranks = match_ranks(np.array([[1.0, 0.0]]), [0], gallery, np.array([0, DISTRACTOR_LABEL]))
    assert ranks.tolist() == [2]
    with pytest.raises(ValueError, match="must be in the gallery"):
        match_ranks(np.array([[1.0, 0.0]]), [3], gallery, np.array([0, 1]))
