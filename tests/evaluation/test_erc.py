import numpy as np
import pytest

from catface_keras.evaluation.erc import erc_comparison, error_versus_reject
from catface_keras.evaluation.roc import threshold_at_far


def _pairs(seed=0, genuine=200, impostor=800):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.6, 0.2, genuine), rng.normal(0.0, 0.1, impostor)])
    same = np.concatenate([np.ones(genuine, bool), np.zeros(impostor, bool)])
    return scores, same


def test_perfect_quality_matches_the_oracle_and_reaches_zero():
    scores, same = _pairs()
    threshold = threshold_at_far(scores, same, 1e-2)
    # A perfect quality score: every false non-match has a lower quality than every match.
    quality = np.where(same & (scores < threshold), 0.0, 1.0) + 1e-3 * scores
    curve = error_versus_reject(scores, same, quality, 1e-2)
    excess = np.asarray(curve["fnmr"]) - np.asarray(curve["oracle_fnmr"])
    np.testing.assert_array_equal(excess, 0.0)
    errors = int(np.sum(same & (scores < threshold)))
    assert curve["fnmr"][0] == pytest.approx(errors / 200)
    for rate, fnmr in zip(curve["reject_rates"], curve["fnmr"]):
        if np.floor(rate * 200) >= errors:
            assert fnmr == 0.0


def test_threshold_fixes_fmr_on_all_pairs_and_random_stays_flat():
    scores, same = _pairs(seed=1)
    threshold = threshold_at_far(scores, same, 1e-2)
    assert np.mean(scores[~same] >= threshold) <= 1e-2
    lower = np.max(scores[scores < threshold])  # the smallest such threshold
    assert np.mean(scores[~same] >= lower) > 1e-2
    assert error_versus_reject(scores, same, scores, 1e-2)["threshold"] == threshold
    curves = erc_comparison(scores, same, {"score": scores}, reject_rates=(0.0, 0.3))
    assert set(curves) == {"score", "random"}
    # Rejecting the lowest-scoring genuine pairs removes errors; random order does not much.
    assert curves["score"]["fnmr"][1] < 0.5 * curves["score"]["fnmr"][0]
    assert abs(curves["random"]["fnmr"][1] - curves["random"]["fnmr"][0]) < 0.1
    with pytest.raises(ValueError, match="Reject rates"):
        error_versus_reject(scores, same, scores, reject_rates=(1.0,))


def test_erc_needs_both_kinds_of_pairs():
    with pytest.raises(ValueError, match="ERC needs genuine and impostor pairs"):
        error_versus_reject([0.1, 0.2], [True, True], [1.0, 1.0])
