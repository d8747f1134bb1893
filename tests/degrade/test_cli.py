"""Tests for `catface degrade` (the degradation picture grid)."""

import argparse

import cv2
import numpy as np
import pytest
from degrade.face_drawing import drawn_face

from catface_keras.cli import degrade as degrade_cli
from catface_keras.visualization import grids

SIZE = 32
ROWS = 7  # turbulence, noise, low resolution, motion blur, JPEG, exposure, mix
COLUMNS = 5  # input + 4 strengths


def parse(*argv):
    parser = argparse.ArgumentParser(prog="catface")
    degrade_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["degrade", *argv])


def write_face(path, red_corner=False):
    face = drawn_face(48)
    if red_corner:
        face[:12, :12] = (255, 0, 0)  # RGB red
    cv2.imwrite(str(path), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return path


def test_writes_a_labelled_grid_in_rgb_order(tmp_path, capsys):
    face = write_face(tmp_path / "face.png", red_corner=True)
    out = tmp_path / "grids" / "grid.png"
    args = parse("--input", str(face), "--out", str(out), "--size", str(SIZE), "--seed", "3")
    assert args.run(args) == 0
    assert "wrote" in capsys.readouterr().out
    grid = cv2.imread(str(out))  # BGR
    height, width = grids.grid_size(ROWS, COLUMNS, SIZE)
    assert grid.shape == (height, width, 3)
    # The input cell keeps the red corner red: OpenCV's BGR was converted both ways.
    top = grids.GAP + grids.HEADER_HEIGHT
    corner = grid[top + 1, grids.LABEL_WIDTH + 1].astype(int)
    assert corner[2] > 200 and corner[0] < 60 and corner[1] < 60
    # Cells differ from the input: the degradations were applied.
    cell = grid[top : top + SIZE, grids.LABEL_WIDTH : grids.LABEL_WIDTH + SIZE]
    last = grid[top : top + SIZE, width - SIZE - grids.GAP : width - grids.GAP]
    assert np.abs(cell.astype(int) - last).mean() > 3


def test_existing_output_is_not_overwritten_silently(tmp_path, capsys):
    face = write_face(tmp_path / "face.png")
    out = tmp_path / "grid.png"
    out.write_bytes(b"keep me")
    args = parse("--input", str(face), "--out", str(out), "--size", str(SIZE))
    assert args.run(args) == 2
    assert f"{out} exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    args = parse("--input", str(face), "--out", str(out), "--size", str(SIZE), "--overwrite")
    assert args.run(args) == 0
    assert cv2.imread(str(out)) is not None


def test_directory_input_stacks_one_block_per_face(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("a.png", "b.jpg", "c.png"):
        write_face(faces / name)
    (faces / "notes.txt").write_text("not an image")
    out = tmp_path / "grid.png"
    args = parse("--input", str(faces), "--out", str(out), "--size", str(SIZE),
                 "--max-images", "2")
    assert args.run(args) == 0
    block, _ = grids.grid_size(ROWS, COLUMNS, SIZE)
    assert cv2.imread(str(out)).shape[0] == 2 * block


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda tmp: tmp / "missing.png", "input {path} does not exist"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no images"),
        (lambda tmp: (tmp / "bad.png").write_bytes(b"garbage") and tmp / "bad.png",
         "cannot read image {path}"),
    ],
)
def test_bad_input_gives_a_clear_error_naming_the_path(tmp_path, capsys, setup, message):
    path = setup(tmp_path)
    args = parse("--input", str(path), "--out", str(tmp_path / "grid.png"))
    assert args.run(args) == 2
    error = capsys.readouterr().err
    assert message.format(path=path) in error and str(path) in error
    assert not (tmp_path / "grid.png").exists()


def test_invalid_size_is_rejected(tmp_path, capsys):
    face = write_face(tmp_path / "face.png")
    args = parse("--input", str(face), "--out", str(tmp_path / "grid.png"), "--size", "8")
    assert args.run(args) == 2
    assert "--size must be at least 16" in capsys.readouterr().err
