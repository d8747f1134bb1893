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


# --- degrade section (issue 12 section 4) ---


def test_degrade_section_reaches_the_degradation_config(tmp_path):
    from catface_keras.degrade.config import DegradationConfig

    config = load_config(write(tmp_path, (
        "degrade:\n  turbulence_fraction: 1\n  d_over_r0_range: [0.5, 1]\n"
        "  jpeg_quality_range: [20, 40]\n"
    )))
    assert isinstance(config.degrade, DegradationConfig)
    assert config.degrade.turbulence_fraction == 1.0
    assert config.degrade.d_over_r0_range == (0.5, 1.0)
    assert config.degrade.jpeg_quality_range == (20.0, 40.0)
    assert ExperimentConfig().degrade.d_over_r0_range == (0.25, 2.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("degrade:\n  d_over_r0: [0.5, 1]\n", r"unknown key `degrade.d_over_r0`"),
        ("degrade:\n  d_over_r0_range: [2, 1]\n",
         r"`degrade.d_over_r0_range` must satisfy 0.0 <= low <= high <= 10.0. "
         r"Received: degrade.d_over_r0_range=\(2.0, 1.0\)"),
        ("degrade:\n  d_over_r0_range: [1]\n", r"`degrade.d_over_r0_range` must be a list of 2"),
        ("degrade:\n  jpeg_probability: 1.5\n",
         r"`degrade.jpeg_probability` must be in \[0.0, 1.0\]. "
         r"Received: degrade.jpeg_probability=1.5"),
    ],
)
def test_degrade_section_is_validated_with_dotted_keys(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_trainer_degrades_with_the_configured_degradation(monkeypatch):
    from catface_keras import trainer

    config = ExperimentConfig().replace("degrade", turbulence_fraction=0.0)
    seen = {}

    class Faces:
        num_examples = 64

        def paired_dataset(self, batch_size, degrade_fn, **kwargs):
            seen["config"] = degrade_fn.keywords["config"]
            return "dataset"

    assert trainer.training_pairs(config, Faces(), 0, 0) == ("dataset", 1)
    assert seen["config"] is config.degrade and seen["config"].turbulence_fraction == 0.0


def test_run_config_yaml_round_trips_with_the_degrade_ranges(tmp_path):
    import yaml

    from catface_keras.config import config_to_dict

    config = ExperimentConfig().replace("degrade", d_over_r0_range=[0.5, 1.0])
    path = write(tmp_path, yaml.safe_dump(config_to_dict(config)))
    assert load_config(path) == config


# --- paths and optional files (issue 12 section 5) ---


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    config = load_config(write(folder, (
        "data:\n  source: image_folder\n  path: ../faces\n  heldout_path: /abs/heldout\n"
    )))
    assert config.data.path == str(tmp_path / "faces")
    assert config.data.heldout_path == "/abs/heldout"
    assert config.data.attributes_csv is None


def test_optional_files_are_optional_but_a_named_missing_one_is_reported(tmp_path):
    from catface_keras.config import check_data_files

    faces = tmp_path / "faces" / "alice"
    faces.mkdir(parents=True)
    (faces / "1.png").write_bytes(b"")
    # One image: a batch of one (a larger batch is refused, see test_r2_08).
    text = "train:\n  batch_size: 1\ndata:\n  source: image_folder\n  path: faces\n"
    check_data_files(load_config(write(tmp_path, text)))  # no CSV, no held-out: fine
    with pytest.raises(ConfigError, match=r"`data.attributes_csv` is not a file .*"
                       r"Received: data.attributes_csv='.*missing.csv'"):
        check_data_files(load_config(write(tmp_path, text + "  attributes_csv: missing.csv\n")))
    (tmp_path / "attrs.csv").write_text("path,Male\n")
    with pytest.raises(ConfigError, match=r"\['Bald', 'Big_Nose', 'Chubby', 'Narrow_Eyes'\] "
                       r"that `data.attributes_csv`"):
        check_data_files(load_config(write(tmp_path, text + "  attributes_csv: attrs.csv\n")))


def test_heldout_folder_too_small_for_tar_at_far_is_refused(tmp_path):
    from catface_keras.config import check_data_files

    for person in ("a", "b", "c"):
        (tmp_path / "faces" / person).mkdir(parents=True)
        for index in range(4):
            (tmp_path / "faces" / person / f"{index}.jpg").write_bytes(b"")
    text = "data:\n  source: image_folder\n  path: faces\n  heldout_path: faces\n"
    with pytest.raises(ConfigError, match=r"`data.heldout_path` holds 12 images of 3 identities, "
                       r"18 genuine pairs; TAR at FAR=1e-2 needs at least 100"):
        check_data_files(load_config(write(tmp_path, text)))


def test_small_image_folder_config_fits_a_small_folder():
    config = load_config(CONFIGS / "image_folder_small.yaml")
    assert config.data.source == "image_folder" and config.model.backbone in ("ir_tiny", "ir_18")
    assert config.data.image_size <= 64 and config.train.batch_size <= 32
    assert 1000 // config.train.batch_size >= 20  # ~100 people x 10 images: >= 20 steps/epoch
    assert config.data.path == str((CONFIGS / "../../data/faces").resolve())
    assert config.data.attributes_csv is None


def test_every_shipped_config_loads_and_has_a_degrade_section():
    import yaml

    for path in sorted(CONFIGS.glob("*.yaml")):
        load_config(path)
        assert "degrade" in yaml.safe_load(path.read_text()), path.name


def test_readme_names_the_distillation_weight_key_next_to_lambda_kd():
    readme = (CONFIGS.parents[1] / "README.md").read_text()
    index = readme.index("lambda_KD")
    assert "loss.distillation_weight" in readme[index : index + 200]


# --- range checks before TensorFlow (issue 15 section 11) ---


@pytest.mark.parametrize(
    "text, message",
    [
        ("model:\n  dropout: 1.5\n",
         r"`model.dropout` must be in \[0, 1\). Received: model.dropout=1.5"),
        ("stage2:\n  dropout: 1.0\n", r"`stage2.dropout` must be in \[0, 1\)"),
        ("optimizer:\n  momentum: -0.1\n",
         r"`optimizer.momentum` must be >= 0. Received: optimizer.momentum=-0.1"),
        ("data:\n  image_size: 40\n",
         r"`data.image_size` must be a multiple of 16 .* Received: data.image_size=40"),
        ("model:\n  attribute_names: [Male, Blond]\n",
         r"`model.attribute_names` has unknown attribute\(s\) \['Blond'\] for data.source: "
         r"synthetic; expected names from: Male, Bald, Big_Nose, Chubby, Narrow_Eyes"),
        ("data:\n  source: celeba\nmodel:\n  attribute_names: [Male, Beard]\n",
         r"`model.attribute_names` has unknown attribute\(s\) \['Beard'\] for data.source: celeba"),
        ("optimizer:\n  lr_milestones: [10, 5]\n",
         r"`optimizer.lr_milestones` must be increasing epochs >= 1. Received: "
         r"optimizer.lr_milestones=\[10, 5\]"),
        ("stage2:\n  lr_milestones: [3, 3]\n", r"`stage2.lr_milestones` must be increasing"),
        ("train:\n  batch_size: 4000\n",
         r"`train.batch_size` must be at most the 2880 synthetic training images .* "
         r"Received: train.batch_size=4000"),
        ("model:\n  backbone: resnet50\n",
         r"`model.backbone` must be one of \('ir_tiny', .*\). Received: model.backbone='resnet50'"),
        ("stage2:\n  fusion: sum\n",
         r"`stage2.fusion` must be one of .* Received: stage2.fusion='sum'"),
        ("loss:\n  distillation: kl\n",
         r"`loss.distillation` must be one of .* Received: loss.distillation='kl'"),
        ("evaluation:\n  num_pairs: 50\n",
         r"`evaluation.num_pairs` must be at least 100: TAR at FAR=1e-2 needs 100 impostor pairs"),
        ("data:\n  num_test_identities: 3\n  test_images_per_identity: 4\n",
         r"give 18 genuine held-out pairs.* TAR at FAR=1e-2 needs at least 100"),
    ],
)
def test_out_of_range_values_stop_with_key_value_and_expectation(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


# --- malformed files (issue 15 section 12) ---


def test_binary_yaml_file_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ConfigError, match=rf"Config file {path} is a binary file, not YAML text"):
        load_config(path)
    path.write_bytes(b"train:\n  epochs: \xff\xfe\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


def test_duplicate_keys_are_refused_naming_key_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"duplicate key `epochs` on line 3 \(first given on "
                       r"line 2\)"):
        load_config(write(tmp_path, "train:\n  epochs: 3\n  epochs: 5\n"))
    with pytest.raises(ConfigError, match=r"duplicate key `train` on line 3"):
        load_config(write(tmp_path, "train: {}\nmodel: {}\ntrain: {}\n"))


# --- structure (issue 12 section 6) ---


def test_allowed_values_match_the_implementations():
    from catface_keras import choices
    from catface_keras.backbones import iresnet
    from catface_keras.losses import distillation
    from catface_keras.models import fusion

    presets = next(value for name, value in vars(iresnet).items()
                   if isinstance(value, dict) and "ir_50" in value)
    assert set(choices.BACKBONES) == set(presets)
    # Every value the config accepts has an implementation behind it.
    for kind in choices.FUSION_KINDS:
        assert fusion.fusion_layer(kind).name == "fusion"
    distances = {kind: distillation.distance_of_kind(kind) for kind in choices.DISTILLATION_KINDS}
    assert set(distances.values()) == set(distillation.DISTANCES)


def test_missing_label_lives_with_the_attributes_and_losses_still_export_it():
    from catface_keras import soft_biometrics
    from catface_keras.losses.attributes import MISSING_LABEL

    assert MISSING_LABEL == soft_biometrics.MISSING_LABEL == -1


def test_face_arrays_has_its_own_module_and_synthetic_re_exports_it():
    from catface_keras.data import face_arrays, synthetic

    assert synthetic.FaceArrays is face_arrays.FaceArrays


def test_load_model_names_a_missing_file(tmp_path):
    from catface_keras.models import load_model

    with pytest.raises(ValueError, match=rf"model {tmp_path / 'none.keras'} does not exist"):
        load_model(tmp_path / "none.keras")
