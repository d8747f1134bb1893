import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from catface_keras.evaluation.roc import (
    FAR_DECADES,
    equal_error_rate,
    far_key,
    roc_auc,
    roc_curve,
    tar_at_fars,
    threshold_at_far,
)


def _random_scores(seed, size):
    rng = np.random.default_rng(seed)
    same = rng.random(size) < 0.3
    # Rounding to two decimals makes many ties, within and across the classes.
    scores = np.round(rng.normal(same * 0.8, 0.5), 2)
    return scores, same


@pytest.mark.parametrize("seed", range(5))
def test_roc_curve_and_auc_match_scikit_learn(seed):
    scores, same = _random_scores(seed, 3000)
    far, tar, thresholds = roc_curve(scores, same)
    expected_far, expected_tar, expected_thresholds = sklearn_roc_curve(
        same, scores, drop_intermediate=False
    )
    np.testing.assert_array_equal(far, expected_far)
    np.testing.assert_array_equal(tar, expected_tar)
    np.testing.assert_array_equal(thresholds[1:], expected_thresholds[1:])
    assert roc_auc(scores, same) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_tar_at_far_is_the_best_tar_with_far_at_most_the_target(seed):
    scores, same = _random_scores(seed, 30_000)  # about 21,000 impostor pairs
    expected_far, expected_tar, _ = sklearn_roc_curve(same, scores, drop_intermediate=False)
    tars, notes = tar_at_fars(scores, same, FAR_DECADES)
    for far in (1e-4, 1e-3, 1e-2, 1e-1):
        assert tars[far] == pytest.approx(np.max(expected_tar[expected_far <= far]), abs=1e-15)
    # Fewer than 1e5 impostors cannot resolve FAR = 1e-5 or 1e-6.
    assert tars[1e-5] is None and tars[1e-6] is None
    assert len(notes) == 1 and notes[0].startswith("TAR at FAR 1e-6, 1e-5 not measured")


def test_tar_at_far_on_exact_far_values():
    # 10 impostors: FAR 1e-1 allows exactly one above the threshold.
    impostor = np.arange(10) / 10.0  # highest 0.9
    genuine = np.array([0.95, 0.85, 0.5])
    scores = np.concatenate([genuine, impostor])
    same = np.arange(13) < 3
    tars, _ = tar_at_fars(scores, same, (1e-1,))
    # Accepting >= 0.8 lets in 0.9 and 0.8: FAR 0.2 is too many; >= 0.85 gives FAR 0.1.
    assert tars[1e-1] == pytest.approx(2 / 3)
    assert far_key(1e-4) == "tar_at_far_1e-4"


def test_equal_error_rate_hand_cases():
    # Threshold 0.7: one of three impostors accepted, one of three genuine rejected.
    scores = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
    same = [True, True, True, False, False, False]
    assert equal_error_rate(scores, same) == pytest.approx(1 / 3)
    # A tie between a genuine and an impostor pair at 0.5: the ROC goes from
    # (FAR 0, TAR 0.5) to (0.5, 1) in one step, crossing FAR = 1 - TAR at 0.25.
    assert equal_error_rate([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.25)
    assert equal_error_rate([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 0.0


def test_roc_argument_errors():
    with pytest.raises(ValueError, match="both genuine"):
        roc_curve([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="1-D and of one length"):
        roc_curve([0.1, 0.2, 0.3], [True, False])


def test_threshold_at_far_decides_ties_together_by_hand():
    # Impostors 0.9, 0.7, 0.7, 0.3, 0.1; genuine 0.8, 0.7, 0.2 (a three-way tie at 0.7).
    scores = np.array([0.9, 0.7, 0.7, 0.3, 0.1, 0.8, 0.7, 0.2])
    same = np.array([False] * 5 + [True] * 3)
    # FAR 0.2 and 0.4 allow 1 and 2 of the 5 impostors. Accepting >= 0.8 lets in the
    # impostor 0.9 (FAR 1/5); the tie at 0.7 brings two more (FAR 3/5), so it is
    # rejected whole, its genuine pair with it, even where two would be allowed.
    assert threshold_at_far(scores, same, 0.2) == 0.8
    assert threshold_at_far(scores, same, 0.4) == 0.8
    # FAR 0.6 takes the whole tie (3/5); 0.3 would bring a fourth impostor.
    assert threshold_at_far(scores, same, 0.6) == 0.7
    # Below 1/5 only FAR 0 is allowed, and the highest score is an impostor's: nothing passes.
    assert threshold_at_far(scores, same, 0.1) == np.inf
    tars, _ = tar_at_fars(scores, same, (0.2, 0.6))
    assert tars == {0.2: 1 / 3, 0.6: 2 / 3}  # the TARs at those thresholds


@pytest.mark.parametrize("far", [0, 1.5, -0.1, "1e-2", True])
def test_threshold_at_far_refuses_a_far_out_of_range(far):
    with pytest.raises(ValueError, match="far="):
        threshold_at_far([0.1, 0.9], [False, True], far)
