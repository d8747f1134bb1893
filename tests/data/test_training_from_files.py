"""End to end: `catface train` on real-format data (tiny CelebA and image-folder trees)."""

import json
import logging
import pathlib

import pytest
import yaml
from data.face_writers import face_image, write_celeba, write_image

from catface_keras.cli.main import main
from catface_keras.config import config_from_dict, load_config
from catface_keras.trainer import _evaluate_heldout, load_data

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "training" / "configs"

TINY = {
    "model": {"backbone": "ir_tiny", "embedding_dim": 16, "dropout": 0.1},
    "train": {"epochs": 1, "batch_size": 8, "distribution": "none"},
    "evaluation": {"num_pairs": 150, "batch_size": 32},
}


@pytest.mark.slow
def test_catface_train_on_a_celeba_folder(tmp_path, capsys, caplog):
    # Train: 4 identities x 4 images, one of them corrupt. Test partition: 6 x 7, enough
    # genuine and impostor pairs for TAR at FAR 1e-2.
    identities = [i // 4 + 1 for i in range(16)] + [i // 7 + 20 for i in range(42)]
    partitions = [0] * 16 + [2] * 42
    attributes = [{"Male"} if identity % 2 else {"Bald"} for identity in identities]
    write_celeba(tmp_path / "celeba", identities, partitions, attributes)
    (tmp_path / "celeba" / "img_align_celeba" / "000005.jpg").write_bytes(b"\xff\xd8 corrupt")
    data = {"source": "celeba", "path": str(tmp_path / "celeba"), "image_size": 32}
    config = {**TINY, "data": data}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="catface_keras.data.decoding"):
        assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["stage1"]
    for condition in ("clean", "degraded", "mixed"):
        assert 0.0 <= metrics["verification"][condition]["accuracy"] <= 1.0
    assert set(metrics["attributes"]["clean"]["accuracy"]) == {
        "Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes"}
    assert "mixed" in capsys.readouterr().out and (out / "stage1.keras").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["source"] == "celeba"
    assert any("1 undecodable image(s) skipped" in r.getMessage() and "000005.jpg" in r.getMessage()
               for r in caplog.records)


def test_source_without_heldout_faces_says_evaluation_was_skipped(tmp_path):
    for index in range(8):
        path = tmp_path / "faces" / f"p{index % 4}" / f"{index}.png"
        write_image(path, face_image(index, 32, 32))
    data = {"source": "image_folder", "path": str(tmp_path / "faces"), "image_size": 32}
    config = config_from_dict({**TINY, "data": data})
    train, heldout = load_data(config)
    assert heldout is None and train.num_classes == 4 and train.num_examples == 8
    # What run_stage1 writes to metrics.json instead of calling evaluate_heldout.
    metrics = _evaluate_heldout(None, heldout, config.evaluation)
    assert "data.heldout_path" in metrics["skipped"]


PAPER_FIVE = ["Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes"]


@pytest.mark.parametrize("name, source, backbone, attributes", [
    ("celeba", "celeba", "ir_50", PAPER_FIVE),
    ("ms1mv2", "recordio", "ir_101", ["Male"]),
    ("image_folder", "image_folder", "ir_50", PAPER_FIVE),
])
def test_shipped_configs_follow_the_paper_recipe(name, source, backbone, attributes):
    config = load_config(CONFIGS / f"{name}.yaml")
    data = config.data
    assert (data.source, config.model.backbone, data.image_size) == (source, backbone, 112)
    assert config.model.attribute_names == attributes
    optimizer = config.optimizer
    assert (optimizer.learning_rate, optimizer.momentum, optimizer.weight_decay) == (0.1, 0.9, 5e-4)
    assert optimizer.lr_milestones and optimizer.lr_decay_factor == 0.1
    assert 2 * config.train.batch_size == 512  # HQ/LQ pairs: the paper's 512 images for lr 0.1
