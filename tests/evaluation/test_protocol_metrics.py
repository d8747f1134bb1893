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


def test_template_verification_mixed_takes_second_templates_from_other_features():
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    template_ids = np.array([0, 1, 2, 3])
    first, second, same = np.array([0, 0]), np.array([1, 2]), np.array([True, False])
    # The second side's features turned by 90 degrees: the genuine pair scores 0,
    # the impostor pair 1 (first template (1, 0) against the turned (1, 0)).
    turned = embeddings[:, ::-1]
    _, scores = template_verification(embeddings, template_ids, first, second, same,
                                      fars=(0.5,), second_embeddings=turned)
    np.testing.assert_allclose(scores, [0.0, 1.0], atol=1e-12)
    _, scores = template_verification(embeddings, template_ids, first, second, same, fars=(0.5,))
    np.testing.assert_allclose(scores, [1.0, 0.0], atol=1e-12)
