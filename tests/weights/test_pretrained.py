"""Stage 1 started from a pretrained iResNet (`model.init`, `--init-backbone`)."""

import keras
import numpy as np
import pytest
import yaml

from catface_keras.backbones.iresnet import IRESNET_PRESETS, IResNetEmbedder
from catface_keras.cli.main import main
from catface_keras.config import config_from_dict, load_config
from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.builders import build_stage1_model
from catface_keras.weights.pretrained import (
    PretrainedBackboneError,
    initialize_from_pretrained,
    load_pretrained_backbone,
)
from tiny_models import TINY_EXPERIMENT

TINY = {**TINY_EXPERIMENT, "train": {**TINY_EXPERIMENT["train"], "epochs": 1}}


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory):
    """An ir_tiny embedder with insightface's conv shortcut, random weights and BN statistics."""
    keras.utils.set_random_seed(7)
    model = IResNetEmbedder(
        {**IRESNET_PRESETS["ir_tiny"], "shortcut": "conv"}, image_size=32, embedding_dim=16
    )
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
        elif isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(rng.uniform(0.05, 0.5, layer.alpha.shape))
    path = tmp_path_factory.mktemp("pretrained") / "backbone.keras"
    model.save(path)
    return path


def tiny_config(**model):
    return config_from_dict({**TINY, "model": {**TINY["model"], **model}})


@pytest.mark.parametrize("branch_stage", [2, 3])
def test_trunk_and_both_branch_copies_start_from_the_pretrained_stages(pretrained_file, branch_stage):
    pretrained = load_pretrained_backbone(pretrained_file)
    model = build_stage1_model(
        tiny_config(init=str(pretrained_file), branch_stage=branch_stage), 5
    ).network
    assert model.backbone_spec["shortcut"] == "conv"  # taken from the pretrained file
    for layer in pretrained.layers:
        if not layer.weights:
            continue
        stage = int(layer.name[5]) if layer.name.startswith("stage") else 0
        targets = [f"fr_{layer.name}", f"sb_{layer.name}"] if stage > branch_stage else [layer.name]
        for target in targets:
            for got, expected in zip(model.get_layer(target).get_weights(), layer.get_weights()):
                np.testing.assert_array_equal(got, expected, err_msg=target)
    # The FR self-attention starts as the identity (gamma = 0) and the head is
    # copied: the FR embedding starts as the pretrained network's.
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        model(images, training=False)["embedding"].numpy(),
        pretrained(images, training=False)["embedding"].numpy(),
        rtol=1e-5,
        atol=1e-5,
    )


def test_head_of_another_size_is_left_out_and_the_trunk_still_loads(pretrained_file):
    pretrained = load_pretrained_backbone(pretrained_file)
    model = MultiBranchModel(backbone=pretrained.backbone_spec, image_size=32, embedding_dim=8)
    summary = initialize_from_pretrained(model, pretrained)
    assert summary["head"] is False
    np.testing.assert_array_equal(
        model.get_layer("fr_stage4_block1_conv2").kernel.numpy(),
        pretrained.get_layer("stage4_block1_conv2").kernel.numpy(),
    )


def test_other_architecture_is_refused_naming_both(pretrained_file):
    with pytest.raises(PretrainedBackboneError, match=r"stage_blocks \[1, 1, 1, 1\].*'ir_18' has \[2, 2, 2, 2\]"):
        build_stage1_model(tiny_config(init=str(pretrained_file), backbone="ir_18"), 5)


def test_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "dense.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    with pytest.raises(PretrainedBackboneError, match="holds a Sequential"):
        load_pretrained_backbone(path)


def test_cli_refuses_a_missing_init_before_training(tmp_path, capsys):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(TINY))
    missing = tmp_path / "nowhere.keras"
    assert main(["train", "--config", str(config_path), "--init-backbone", str(missing)]) == 2
    assert f"model.init: pretrained backbone {missing} does not exist" in capsys.readouterr().err
    assert main(["train", "--config", str(config_path), "--stage", "2",
                 "--init-backbone", str(missing)]) == 2
    assert "--init-backbone only applies to stage 1" in capsys.readouterr().err


def test_yaml_key_reaches_the_stage1_model(pretrained_file, tmp_path):
    """`run_stage1` builds its model with `build_stage1_model` (a full run: see the report)."""
    config_path = tmp_path / "pretrained.yaml"
    config_path.write_text(yaml.safe_dump({**TINY, "model": {**TINY["model"], "init": str(pretrained_file)}}))
    config = load_config(config_path)
    assert config.model.init == str(pretrained_file)
    model = build_stage1_model(config, 5)
    pretrained = load_pretrained_backbone(pretrained_file)
    np.testing.assert_array_equal(
        model.network.get_layer("sb_stage4_block1_conv1").kernel.numpy(),
        pretrained.get_layer("stage4_block1_conv1").kernel.numpy(),
    )


def test_shipped_celeba_pretrained_config_reads():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    config = load_config(root / "training" / "configs" / "celeba_pretrained.yaml")
    # Relative to the config file, as data paths are: the repository's pretrained/ folder.
    assert config.model.init == str(root / "pretrained" / "ir50.keras")
    assert (config.model.backbone, config.data.image_size, config.model.embedding_dim) == ("ir_50", 112, 512)
