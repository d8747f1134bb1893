"""`catface inspect`: gradient and attention grids per face."""

import argparse

import cv2
import numpy as np
import pytest
from degrade.face_drawing import drawn_face

from catface_keras.cli import inspect as inspect_cli
from catface_keras.visualization import grids, inspection
from tiny_models import SIZE


def parse(*argv):
    parser = argparse.ArgumentParser(prog="catface")
    inspect_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["inspect", *argv])


@pytest.fixture(scope="module")
def model_path(tiny_model_path):
    return tiny_model_path


def write_faces(directory, count):
    paths = []
    for index in range(count):
        path = directory / f"face{index}.png"
        cv2.imwrite(str(path), cv2.cvtColor(drawn_face(48 + 8 * index), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def test_writes_gradient_and_attention_grids(model_path, tmp_path, capsys):
    faces = write_faces(tmp_path, 2)
    out = tmp_path / "inspect"
    args = parse("--model", str(model_path), "--images", *map(str, faces), "--out", str(out),
                 "--seed", "3")
    assert args.run(args) == 0
    assert "wrote" in capsys.readouterr().out
    cell = inspection.MIN_CELL_SIZE
    for index in range(2):
        gradients = cv2.imread(str(out / f"{index:02d}_face{index}_gradients.png"))
        attention = cv2.imread(str(out / f"{index:02d}_face{index}_attention.png"))
        # Rows: 5 attributes + the embedding; columns: input + 3 methods.
        assert gradients.shape == grids.grid_size(6, 4, cell) + (3,)
        # Rows: HQ, LQ; columns: input + first block + FR and SB last blocks.
        assert attention.shape == grids.grid_size(2, 4, cell) + (3,)
        top = grids.GAP + grids.HEADER_HEIGHT
        hq = attention[top : top + cell, grids.LABEL_WIDTH : grids.LABEL_WIDTH + cell]
        lq_top = top + grids.HEADER_HEIGHT + cell + grids.GAP
        lq = attention[lq_top : lq_top + cell, grids.LABEL_WIDTH : grids.LABEL_WIDTH + cell]
        assert np.abs(hq.astype(int) - lq).mean() > 1  # the LQ copy is degraded


def test_existing_grids_are_not_overwritten_silently(model_path, tmp_path, capsys):
    (face,) = write_faces(tmp_path, 1)
    out = tmp_path / "inspect"
    out.mkdir()
    existing = out / "00_face0_gradients.png"
    existing.write_bytes(b"keep me")
    args = parse("--model", str(model_path), "--images", str(face), "--out", str(out))
    assert args.run(args) == 2
    assert f"{existing} exists; pass --overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"


def test_a_missing_image_is_reported(model_path, tmp_path, capsys):
    args = parse("--model", str(model_path), "--images", str(tmp_path / "none.jpg"),
                 "--out", str(tmp_path))
    assert args.run(args) == 2
    assert "none.jpg does not exist" in capsys.readouterr().err


def test_reference_image_sets_the_similarity_target(model_path):
    from catface_keras.models import load_model

    model = load_model(model_path)
    faces = [drawn_face(SIZE), np.ascontiguousarray(drawn_face(SIZE)[:, ::-1])]
    (default, _), _ = inspection.inspection_grids(model, faces)
    (flipped, _), _ = inspection.inspection_grids(model, faces, reference=faces[1])
    cell = inspection.MIN_CELL_SIZE
    assert default.shape == flipped.shape == grids.grid_size(6, 4, cell) + (3,)
    # The embedding row (last) of the first face: its own norm by default, the cosine to the
    # mirrored face with --reference; the attribute rows do not depend on the reference.
    last_row = 5 * (grids.HEADER_HEIGHT + cell + grids.GAP)
    np.testing.assert_array_equal(default[:last_row], flipped[:last_row])
    assert np.abs(default[last_row:].astype(int) - flipped[last_row:]).max() > 50
