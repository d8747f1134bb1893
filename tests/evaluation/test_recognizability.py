import numpy as np
import pytest

from catface_keras.evaluation.recognizability import (
    class_prototypes,
    recognizability_distances,
    recognizability_from_distances,
    recognizability_index,
    unrecognizable_center,
)


def test_ri_is_monotone_in_each_distance():
    grid = np.linspace(0.05, 1.95, 9)
    base = dict(d_ui=1.0, d_own=0.5, d_other=1.5)
    for name, sign in (("d_ui", 1), ("d_own", -1), ("d_other", 1)):
        values = [recognizability_from_distances(**{**base, name: v}) for v in grid]
        assert np.all(sign * np.diff(values) > 0), name
    # Bounds: 0 at the centre, 1 opposite the centre and the clearest identity.
    assert recognizability_from_distances(0.0, 0.0, 2.0) == 0.0
    assert recognizability_from_distances(2.0, 0.0, 2.0) == 1.0


def test_distances_hand_computed_with_and_without_labels():
    prototypes = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    center = np.array([0.0, 0.0, 2.0])  # only its direction counts
    z = np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    d_ui, d_own, d_other = recognizability_distances(z, center, prototypes, labels=[0, 1])
    np.testing.assert_allclose(d_ui, [1.0, 1.0])
    np.testing.assert_allclose(d_own, [0.0, 1 - np.sqrt(0.5)])
    np.testing.assert_allclose(d_other, [1.0, 1 - np.sqrt(0.5)])
    ri = recognizability_index(z, center, prototypes, labels=[0, 1])
    np.testing.assert_allclose(ri, [0.5 * 3 / 4, 0.5 * 2 / 4])
    unlabeled = recognizability_distances(z[:1], center, prototypes)
    np.testing.assert_allclose([d[0] for d in unlabeled], [1.0, 0.0, 1.0])


def test_centre_and_prototypes_average_normalised_embeddings():
    degraded = np.array([[2.0, 0.0], [0.0, 5.0]])
    np.testing.assert_allclose(unrecognizable_center(degraded), [0.5, 0.5])
    classes, prototypes = class_prototypes([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], [7, 7, 3])
    np.testing.assert_array_equal(classes, [3, 7])
    np.testing.assert_allclose(prototypes, [[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="non-empty"):
        unrecognizable_center(np.zeros((0, 2)))
