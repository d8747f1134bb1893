"""Overlays and labelled PNG grids."""

import cv2
import numpy as np
import pytest

from catface_keras.visualization import grids


def test_overlay_blends_the_colour_map_onto_the_face():
    face = np.full((8, 8, 3), 200, np.uint8)
    heat = np.zeros((8, 8))
    heat[0, 0] = 1.0
    np.testing.assert_array_equal(grids.overlay(face, heat, alpha=0.0), face)
    full = grids.overlay(face, heat, alpha=1.0)
    assert tuple(full[0, 0]) == (128, 0, 0)  # jet at 1: dark red
    assert tuple(full[1, 1]) == (0, 0, 128)  # jet at 0: dark blue
    assert full.dtype == np.uint8


def test_overlay_rejects_a_map_of_another_size():
    with pytest.raises(ValueError, match=r"`heatmap` must be \(H, W\).*heatmap.shape=\(4, 4\)"):
        grids.overlay(np.zeros((8, 8, 3)), np.zeros((4, 4)))


def test_grid_png_has_the_expected_size(tmp_path):
    cells = [[np.full((20, 20, 3), value, np.uint8) for value in (0, 80, 160)]] * 2
    grid = grids.labelled_grid(cells, ["first\nrow", "second"], ["a", "b", "c"], cell_size=40)
    path = tmp_path / "out" / "grid.png"
    grids.write_png(path, grid)
    decoded = cv2.imread(str(path))
    assert decoded.shape == grids.grid_size(2, 3, 40) + (3,)
    assert decoded.shape == (2 * (grids.HEADER_HEIGHT + 40 + grids.GAP) + grids.GAP,
                             grids.LABEL_WIDTH + 3 * (40 + grids.GAP), 3)
    top, left = grids.GAP + grids.HEADER_HEIGHT, grids.LABEL_WIDTH + 40 + grids.GAP
    assert tuple(decoded[top + 5, left + 5]) == (80, 80, 80)  # a cell, resized to 40 px


def test_grid_needs_a_label_per_row():
    with pytest.raises(ValueError, match="one label per row"):
        grids.labelled_grid([[np.zeros((4, 4, 3), np.uint8)]], [], ["a"], 4)
