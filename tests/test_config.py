import pathlib

import pytest

from catface_keras.config import ConfigError, ExperimentConfig, config_from_dict, load_config

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "training" / "configs"


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_demo_yaml_equals_built_in_defaults():
    assert load_config(CONFIGS / "demo.yaml") == ExperimentConfig()


def test_missing_keys_keep_defaults_and_ints_widen_to_floats(tmp_path):
    config = load_config(write(tmp_path, "train:\n  epochs: 3\noptimizer:\n  learning_rate: 1\n"))
    assert config.train.epochs == 3 and config.train.batch_size == ExperimentConfig().train.batch_size
    assert config.optimizer.learning_rate == 1.0 and isinstance(config.optimizer.learning_rate, float)


def test_unknown_key_is_named_with_its_section(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key `train.epoch`"):
        load_config(write(tmp_path, "train:\n  epoch: 3\n"))
    with pytest.raises(ConfigError, match=r"unknown key `trainer`"):
        load_config(write(tmp_path, "trainer: {}\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  epochs: three\n", r"`train.epochs` must be int. Received: 'three'"),
        ("train:\n  epochs: 2.5\n", r"`train.epochs` must be int"),
        ("train:\n  epochs: true\n", r"`train.epochs` must be int"),
        ("train:\n  epochs: 0\n", r"`train.epochs` must be positive"),
        ("model:\n  attribute_names: Male\n", r"`model.attribute_names` must be a list"),
        ("optimizer:\n  lr_milestones: [2, x]\n", r"`optimizer.lr_milestones\[1\]` must be int"),
        ("loss:\n  distillation: kl\n", r"`loss.distillation` must be one of"),
        ("train: 5\n", r"`train` must be a mapping"),
    ],
)
def test_wrong_types_stop_with_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read config file .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "train: [\n"))


def test_replace_validates_like_a_file():
    config = ExperimentConfig().replace("train", epochs=2)
    assert config.train.epochs == 2
    with pytest.raises(ConfigError, match="train.epochs"):
        ExperimentConfig().replace("train", epochs=-1)
    assert config_from_dict({}) == ExperimentConfig()
