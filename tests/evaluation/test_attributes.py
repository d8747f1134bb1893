"""Attribute scores: accuracy, the majority base rate, balanced accuracy and its interval."""

import math

import numpy as np
import pytest

from catface_keras.evaluation.attributes import (
    attribute_scores,
    binary_attribute_scores,
    wilson_interval,
)


def test_wilson_interval_matches_published_values():
    # Wilson (1927); e.g. Newcombe (1998), Table I: 5/10 -> 0.2366-0.7634, 0/10 -> 0-0.2775.
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert all(math.isnan(bound) for bound in wilson_interval(0, 0))


def test_binary_scores_by_hand():
    # 3 positives (2 found), 5 negatives (4 rejected).
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    predictions = np.array([1, 1, 0, 0, 0, 0, 0, 1], bool)
    scores = binary_attribute_scores(labels, predictions)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["majority_rate"] == pytest.approx(5 / 8)
    assert scores["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    # Wilson 2/3: [0.20766, 0.93851]; 4/5: [0.37553, 0.96378]; bounds averaged.
    low, high = scores["balanced_accuracy_ci"]
    assert low == pytest.approx((0.207660 + 0.375535) / 2, abs=1e-5)
    assert high == pytest.approx((0.938508 + 0.963776) / 2, abs=1e-5)
    assert (scores["num_labelled"], scores["num_positive"]) == (8, 3)


def test_constant_predictor_scores_the_base_rate_and_half_balanced():
    labels = np.array([1] + [0] * 39, bool)
    scores = binary_attribute_scores(labels, np.zeros(40, bool))
    assert scores["accuracy"] == scores["majority_rate"] == pytest.approx(39 / 40)
    assert scores["balanced_accuracy"] == 0.5
    low, high = scores["balanced_accuracy_ci"]
    assert low < 0.5 < high


def test_one_class_only_has_no_balanced_accuracy():
    scores = binary_attribute_scores(np.ones(4, bool), np.array([1, 1, 0, 1], bool))
    assert scores["accuracy"] == 0.75 and scores["majority_rate"] == 1.0
    assert math.isnan(scores["balanced_accuracy"])


def test_attribute_scores_skip_unknown_labels_and_check_shapes():
    labels = np.array([[1, -1], [0, 1], [-1, 0]])
    logits = np.array([[2.0, 5.0], [-1.0, 3.0], [9.0, 1.0]])
    scores = attribute_scores(labels, logits, ["Male", "Bald"])
    assert scores["Male"]["num_labelled"] == 2 and scores["Male"]["balanced_accuracy"] == 1.0
    assert scores["Bald"]["accuracy"] == 0.5 and scores["Bald"]["balanced_accuracy"] == 0.5
    with pytest.raises(ValueError, match="disagree on the attributes"):
        attribute_scores(labels, logits[:, :1], ["Male", "Bald"])
