"""The model card: what the run folder, calibration file and model say, "unknown" otherwise."""

import json

import pytest
import yaml

from catface_keras.evaluation.calibration import save_calibration
from catface_keras.export.model_card import (
    IMPORTED_WEIGHTS_LICENCE,
    JSON_FILE,
    MARKDOWN_FILE,
    UNKNOWN,
    model_card,
    model_card_markdown,
    training_record,
    write_model_card,
)

EXPORTS = {"onnx": {"file": "model.onnx", "precision": "float32", "check": "max abs 1e-06"}}
CONFIG = {"data": {"source": "synthetic", "image_size": 48},
          "model": {"backbone": "ir_tiny", "embedding_dim": 16, "init": None},
          "train": {"epochs": 2}}
METRICS = {"stage1": {"verification": {"clean": {"accuracy": 0.875, "eer": 0.125}}},
           "stage2": {"verification": {"clean": {"accuracy": 0.9}}}}


@pytest.fixture
def run_folder(tmp_path, format_model_paths):
    """A run folder holding stage1.keras, its config, metrics and calibration file."""
    folder = tmp_path / "runs" / "demo"
    folder.mkdir(parents=True)
    model_path = folder / "stage1.keras"
    model_path.write_bytes(format_model_paths["stage1"].read_bytes())
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    save_calibration(model_path, {1e-3: 0.3125, 1e-2: 0.25}, "lfw.bin (300 pairs)")
    return folder


def test_card_of_a_model_in_its_run_folder(run_folder, format_models):
    model = format_models["stage1"]
    record = training_record(run_folder / "stage1.keras", ("config.yaml",), "metrics.json")
    card = model_card(model, run_folder / "stage1.keras", EXPORTS, record)
    architecture = card["architecture"]
    assert architecture["class"] == "MultiBranchModel"
    assert architecture["parameters"] == model.count_params()
    assert architecture["image_size"] == 48 and architecture["embedding_dim"] == 16
    assert architecture["attributes"] == list(model.attribute_names)
    assert card["training"]["config"] == CONFIG
    assert card["training"]["data"] == CONFIG["data"]
    assert card["metrics"] == METRICS["stage1"]  # the entry of this model's stage
    assert card["calibration"]["thresholds"] == {"1e-3": 0.3125, "1e-2": 0.25}
    assert card["weights"]["imported"]["imported"] is False
    markdown = model_card_markdown(card)
    assert "| verification.clean.accuracy | 0.875 |" in markdown
    assert "| 1e-3 | 0.3125 |" in markdown
    assert "configuration `config.yaml`; data: synthetic (the `data` section below)" in markdown
    assert "backbone: ir_tiny" in markdown  # the configuration, as YAML
    assert "sole basis" in markdown and "Demographic differentials" in markdown
    assert "attribute probabilities (Male, Bald" in card["intended_use"]


def test_card_of_a_lone_model_says_unknown(format_model_paths, format_models, tmp_path):
    lone = tmp_path / "model.keras"
    lone.write_bytes(format_model_paths["stage1"].read_bytes())
    record = training_record(lone, ("config.yaml",), "metrics.json")
    card = model_card(format_models["stage1"], lone, EXPORTS, record)
    assert card["training"]["config"] == UNKNOWN and card["metrics"] == UNKNOWN
    assert card["calibration"]["thresholds"] == UNKNOWN
    assert card["weights"]["imported"]["imported"] == UNKNOWN
    markdown = model_card_markdown(card)
    assert "Unknown: the model file is not in a run folder" in markdown
    assert "Unknown: no calibration file (model.calibration.json beside the model)" in markdown


def test_card_without_a_model_file(format_models):
    card = model_card(format_models["stage1"], None, EXPORTS)
    assert card["model_file"] == UNKNOWN and card["calibration"]["file"] == UNKNOWN
    assert model_card_markdown(card).startswith("# Model card: unknown")


def test_imported_weights_carry_their_licence(run_folder, format_models, format_model_paths):
    card = model_card(format_models["imported"], format_model_paths["imported"], EXPORTS)
    assert card["weights"]["licence"] == IMPORTED_WEIGHTS_LICENCE
    assert "non-commercial research purposes only" in card["weights"]["licence"]
    assert card["architecture"]["attributes"] == []
    assert set(card["input_contract"]["outputs"]) == {"embedding", "embedding_norm"}
    assert "attribute" not in card["intended_use"]

    # Stage 1 started from imported weights (model.init) inherits their terms.
    config = {**CONFIG, "model": {**CONFIG["model"], "init": "/weights/backbone.keras"}}
    (run_folder / "config.yaml").write_text(yaml.safe_dump(config))
    record = training_record(run_folder / "stage1.keras", ("config.yaml",), "metrics.json")
    card = model_card(format_models["stage1"], run_folder / "stage1.keras", EXPORTS, record)
    assert card["weights"]["imported"]["imported"] is True
    assert card["weights"]["licence"] == IMPORTED_WEIGHTS_LICENCE


def test_stage2_reads_its_own_config_first(run_folder, format_models):
    (run_folder / "stage2_config.yaml").write_text(yaml.safe_dump({"stage2": {"epochs": 1}}))
    record = training_record(
        run_folder / "stage2.keras", ("stage2_config.yaml", "config.yaml"), "metrics.json"
    )
    assert record["config_file"] == "stage2_config.yaml"
    assert record["metrics"] == METRICS["stage2"]


def test_card_files_are_written_whole_and_read_back(format_models, tmp_path):
    card = model_card(format_models["stage2"], tmp_path / "stage2.keras", EXPORTS)
    write_model_card(card, tmp_path)
    assert json.loads((tmp_path / JSON_FILE).read_text()) == json.loads(json.dumps(card))
    assert (tmp_path / MARKDOWN_FILE).read_text().startswith("# Model card: stage2.keras")
    assert sorted(path.name for path in tmp_path.iterdir()) == [JSON_FILE, MARKDOWN_FILE]
    assert card["architecture"]["fusion"] == "catf"
