"""Heat-map overlays on faces and labelled picture grids, written as PNG.

A grid has a label column on the left and, above every cell, a header line; each cell is
`cell_size` pixels square:

    height = rows * (HEADER_HEIGHT + cell_size + GAP) + GAP
    width  = LABEL_WIDTH + columns * (cell_size + GAP)
"""

import pathlib

import cv2
import matplotlib
import numpy as np

from catface_keras.atomic_files import write_atomically

LABEL_WIDTH = 132
HEADER_HEIGHT = 16
GAP = 4
_LINE_HEIGHT = 14


def overlay(image, heatmap, alpha=0.5, colormap="jet"):
    """Blends a colour-mapped heat map onto a face.

    Args:
        image: `(H, W, 3)` RGB, uint8 or float in [0, 255].
        heatmap: `(H, W)` values in [0, 1].
        alpha: weight of the colour map (0: the face only).
        colormap: a matplotlib colormap name.

    Returns:
        `(H, W, 3)` uint8 RGB: `(1 - alpha) * image + alpha * 255 * colormap(heatmap)`.
    """
    image = np.asarray(image, dtype=np.float32)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if image.shape[:2] != heatmap.shape or image.ndim != 3:
        raise ValueError(
            "`heatmap` must be (H, W) for an (H, W, 3) `image`. Received: "
            f"image.shape={image.shape}, heatmap.shape={heatmap.shape}"
        )
    colors = matplotlib.colormaps[colormap](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    return np.clip((1.0 - alpha) * image + alpha * colors, 0, 255).round().astype(np.uint8)


def grid_size(rows, columns, cell_size):
    """`(height, width)` in pixels of a `labelled_grid`."""
    return (
        rows * (HEADER_HEIGHT + cell_size + GAP) + GAP,
        LABEL_WIDTH + columns * (cell_size + GAP),
    )


def labelled_grid(cells, row_labels, column_labels, cell_size):
    """Lays out images in rows, with a label per row and a header per column.

    Args:
        cells: list of rows, each a list of `(h, w, 3)` uint8 RGB images (resized to
            `cell_size` square).
        row_labels: one string per row; `\\n` starts a new line.
        column_labels: one string per column (the longest row's length), or one such
            list per row when the headers differ from row to row.
        cell_size: side of each cell in pixels.

    Returns:
        `grid_size(len(cells), columns, cell_size) + (3,)` uint8 RGB (columns: the most
        column labels of a row), white background.
    """
    per_row = bool(column_labels) and not isinstance(column_labels[0], str)
    headers = list(column_labels) if per_row else [column_labels] * len(cells)
    if (
        len(row_labels) != len(cells)
        or len(headers) != len(cells)
        or any(len(row) > len(labels) for row, labels in zip(cells, headers))
    ):
        raise ValueError(
            "`row_labels` needs one label per row and `column_labels` one per column. "
            f"Received: {len(cells)} rows, {len(row_labels)} row labels, "
            f"column_labels={column_labels!r}"
        )
    columns = max(len(labels) for labels in headers) if headers else 0
    height, width = grid_size(len(cells), columns, cell_size)
    canvas = np.full((height, width, 3), 255, np.uint8)
    cell_height = HEADER_HEIGHT + cell_size + GAP
    for row_index, (label, row, row_headers) in enumerate(zip(row_labels, cells, headers)):
        top = row_index * cell_height + GAP
        lines = label.split("\n")
        first_line = top + HEADER_HEIGHT + (cell_size - _LINE_HEIGHT * len(lines)) // 2 + 10
        for line_index, line in enumerate(lines):
            _put_text(canvas, line, (4, first_line + line_index * _LINE_HEIGHT), 0.4)
        for column, image in enumerate(row):
            left = LABEL_WIDTH + column * (cell_size + GAP)
            _put_text(canvas, row_headers[column], (left + 2, top + HEADER_HEIGHT - 4), 0.35)
            image = np.asarray(image, dtype=np.uint8)
            if image.shape[:2] != (cell_size, cell_size):
                image = cv2.resize(image, (cell_size, cell_size), interpolation=cv2.INTER_LINEAR)
            cell_top = top + HEADER_HEIGHT
            canvas[cell_top : cell_top + cell_size, left : left + cell_size] = image
    return canvas


def write_png(path, rgb):
    """Writes an RGB uint8 image (PNG, or the format its suffix names), creating parent
    directories; written beside `path` and renamed into place once complete."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)

    def write(temporary):
        if not cv2.imwrite(str(temporary), bgr):
            raise ValueError(f"cannot write image {path} (use a .png name)")

    write_atomically(path, write)


def _put_text(canvas, text, origin, scale):
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
