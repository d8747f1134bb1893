"""Thresholds at a FAR, and the calibration file stored beside the model."""

import json

import numpy as np
import pytest

from catface_keras.evaluation.calibration import (
    calibration_path,
    describe_calibration,
    load_threshold,
    rates_at_thresholds,
    save_calibration,
    split_pairs,
    threshold_at_far,
    thresholds_at_fars,
)


def false_accept_rate(scores, same, threshold):
    impostor = np.asarray(scores)[~np.asarray(same)]
    return np.mean(impostor >= threshold)


def test_threshold_at_far_by_hand():
    impostor = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    genuine = [0.55, 0.85, 0.99]
    scores = np.array(impostor + genuine)
    same = np.array([False] * 10 + [True] * 3)
    # FAR 0.2 allows 2 of 10 impostors: accepting >= 0.85 lets in 0.9 and 0.95 (and the
    # genuine 0.85); 0.8 would let in a third.
    assert threshold_at_far(scores, same, 0.2) == 0.85
    assert threshold_at_far(scores, same, 0.1) == 0.95
    assert threshold_at_far(scores, same, 0.25) == 0.85
    assert threshold_at_far(scores, same, 0.999) == 0.2


def test_ties_are_accepted_together():
    scores = np.array([0.5, 0.5, 0.5, 0.1, 0.9])
    same = np.array([False, False, True, False, True])
    # Threshold 0.5 would let in 2 of 3 impostors together; FAR 0.5 keeps only 0.9.
    assert threshold_at_far(scores, same, 0.5) == 0.9


def test_threshold_holds_its_far_on_random_scores():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 0.1, 5000), rng.normal(0.5, 0.1, 500)])
    same = np.arange(5500) >= 5000
    for far in (1e-3, 1e-2, 1e-1):
        threshold = threshold_at_far(scores, same, far)
        assert false_accept_rate(scores, same, threshold) <= far
        # The lowest such threshold: the next lower score breaks the FAR.
        lower = np.max(scores[scores < threshold])
        assert false_accept_rate(scores, same, lower) > far


def test_thresholds_at_the_measurable_fars():
    rng = np.random.default_rng(1)
    scores = rng.uniform(-1, 1, 1100)
    same = np.arange(1100) < 100  # 1000 impostor pairs: FAR 1e-3 and up
    thresholds = thresholds_at_fars(scores, same)
    assert sorted(thresholds) == [1e-3, 1e-2, 1e-1]
    assert thresholds[1e-2] == threshold_at_far(scores, same, 1e-2)
    assert thresholds[1e-3] > thresholds[1e-2] > thresholds[1e-1]
    assert thresholds_at_fars(scores, same, fars=(1e-4,)) == {}


def test_too_few_impostor_pairs_is_an_error():
    with pytest.raises(ValueError, match="needs at least 1000 impostor pairs. Received: 3"):
        threshold_at_far([0.1, 0.2, 0.3, 0.9], [False, False, False, True], 1e-3)


@pytest.mark.parametrize("far", [0, 1, -0.1, "1e-3"])
def test_far_out_of_range_is_refused(far):
    with pytest.raises(ValueError, match="far="):
        threshold_at_far([0.1, 0.9], [False, True], far)


def test_save_and_load_round_trip(tmp_path):
    model = tmp_path / "stage2.keras"
    path = save_calibration(model, {1e-3: 0.31, 1e-4: 0.42, 0.05: 0.2}, "lfw.bin")

    assert path == tmp_path / "stage2.calibration.json" == calibration_path(model)
    content = json.loads(path.read_text())
    assert content["thresholds"] == {"1e-4": 0.42, "1e-3": 0.31, "5e-2": 0.2}
    assert content["source"] == "lfw.bin" and content["model"] == "stage2.keras"
    assert load_threshold(model, 0.001) == 0.31
    assert load_threshold(model, 1e-4) == 0.42
    assert load_threshold(model, 5e-2) == 0.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage2.calibration.json"]


def test_save_replaces_the_previous_file(tmp_path):
    model = tmp_path / "m.keras"
    save_calibration(model, {1e-3: 0.3}, "first")
    save_calibration(model, {1e-2: 0.2}, "second")
    with pytest.raises(ValueError, match="no threshold at FAR 1e-3 \\(it has FAR 1e-2\\)"):
        load_threshold(model, 1e-3)
    assert load_threshold(model, 1e-2) == 0.2


def test_missing_file_says_how_to_make_one(tmp_path):
    model = tmp_path / "stage1.keras"
    with pytest.raises(ValueError) as error:
        load_threshold(model, 1e-3)
    message = str(error.value)
    assert str(tmp_path / "stage1.calibration.json") in message
    assert f"catface evaluate --model {model}" in message and "--threshold" in message


def test_a_file_of_another_kind_is_refused(tmp_path):
    (tmp_path / "m.calibration.json").write_text('{"thresholds": [1, 2]}')
    with pytest.raises(ValueError, match="is not a catface-calibration file"):
        load_threshold(tmp_path / "m.keras", 1e-3)
    (tmp_path / "m.calibration.json").write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_threshold(tmp_path / "m.keras", 1e-3)


@pytest.mark.parametrize("thresholds", [{}, {1e-3: float("nan")}, {2.0: 0.3}])
def test_bad_thresholds_are_not_saved(tmp_path, thresholds):
    with pytest.raises(ValueError):
        save_calibration(tmp_path / "m.keras", thresholds, "x")
    assert list(tmp_path.iterdir()) == []


def test_split_pairs_keeps_each_kind_share_and_is_seeded():
    same = np.arange(100) < 30  # 30 genuine, 70 impostor
    calibration, held_out = split_pairs(same, 0.3, seed=4)
    assert same[calibration].sum() == 9 and (~same[calibration]).sum() == 21
    assert np.intersect1d(calibration, held_out).size == 0
    np.testing.assert_array_equal(np.union1d(calibration, held_out), np.arange(100))
    again, _ = split_pairs(same, 0.3, seed=4)
    other, _ = split_pairs(same, 0.3, seed=5)
    np.testing.assert_array_equal(calibration, again)
    assert not np.array_equal(calibration, other)


@pytest.mark.parametrize("fraction, same, message", [
    (0.0, np.arange(10) < 5, "fraction=0.0"),
    (1, np.arange(10) < 5, "fraction=1"),
    (0.1, np.arange(10) < 2, "without genuine pairs. Received: 2"),
    (0.5, np.arange(10) < 9, "without impostor pairs. Received: 1"),
])
def test_split_pairs_refuses_a_part_without_a_kind(fraction, same, message):
    with pytest.raises(ValueError, match=message):
        split_pairs(same, fraction)


def test_rates_at_thresholds_by_hand():
    scores = np.array([0.1, 0.5, 0.7, 0.9, 0.4, 0.8])
    same = np.array([False, False, False, False, True, True])
    rates = rates_at_thresholds(scores, same, {0.25: 0.7, 0.5: 0.45})
    assert rates == {0.25: {"far": 0.5, "tar": 0.5}, 0.5: {"far": 0.75, "tar": 0.5}}


def test_the_record_says_which_pairs_a_threshold_came_from(tmp_path):
    model = tmp_path / "m.keras"
    save_calibration(model, {1e-2: 0.3}, "lfw.bin (300 genuine, 300 impostor pairs, clean)")
    content = json.loads(calibration_path(model).read_text())
    assert content["calibrated_on"] == "evaluated" and "split" not in content
    assert describe_calibration(model, 1e-2) == (
        "calibrated on the evaluated pairs of lfw.bin (300 genuine, 300 impostor pairs, "
        "clean) (no held-out check)")

    split = {"fraction": 0.3, "seed": 1, "calibration_pairs": 180, "held_out_pairs": 420}
    save_calibration(model, {1e-2: 0.3}, "lfw.bin (90 genuine, 90 impostor pairs, clean)",
                     split=split, held_out={1e-2: {"far": 0.0142857, "tar": 0.9}})
    content = json.loads(calibration_path(model).read_text())
    assert content["calibrated_on"] == "split" and content["split"] == split
    assert content["held_out"] == {"1e-2": {"far": 0.014286, "tar": 0.9}}
    assert describe_calibration(model, 1e-2) == (
        "calibrated on a 30 % split of lfw.bin (90 genuine, 90 impostor pairs, clean); on the "
        "420 held-out pairs FAR 0.014, TAR 0.900")
    with pytest.raises(ValueError, match="`held_out` goes with `split` or `checked_on`"):
        save_calibration(model, {1e-2: 0.3}, "x", split=split)
    with pytest.raises(ValueError, match="`split` and `checked_on` exclude each other"):
        save_calibration(model, {1e-2: 0.3}, "x", split=split, held_out={},
                         checked_on={"source": "y", "pairs": 2})
    checked = {"source": "heldout (5 genuine, 5 impostor pairs, clean)", "pairs": 10}
    save_calibration(model, {1e-2: 0.3}, "pairs.txt (90 genuine, 90 impostor pairs, clean)",
                     held_out={1e-2: {"far": 0.1, "tar": 0.8}}, checked_on=checked)
    content = json.loads(calibration_path(model).read_text())
    assert content["calibrated_on"] == "pairs_file" and content["checked_on"] == checked
    assert "split" not in content
    assert describe_calibration(model, 1e-2) == (
        "calibrated on the separate pairs of pairs.txt (90 genuine, 90 impostor pairs, clean); "
        "on the 10 evaluated pairs of heldout (5 genuine, 5 impostor pairs, clean) FAR 0.1, "
        "TAR 0.800")


def test_a_file_without_calibrated_on_was_calibrated_on_the_evaluated_pairs(tmp_path):
    model = tmp_path / "m.keras"
    calibration_path(model).write_text(json.dumps({
        "format": "catface-calibration", "version": 1, "model": "m.keras",
        "source": "old pairs", "thresholds": {"1e-3": 0.4}}))
    assert describe_calibration(model, 1e-3).startswith("calibrated on the evaluated pairs of "
                                                        "old pairs")
