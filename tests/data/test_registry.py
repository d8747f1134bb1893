"""The face-source registry: every caller's choices come from it, every entry is implemented."""

import os
import pathlib
import subprocess
import sys

import pytest

from catface_keras.cli import data as data_cli
from catface_keras.config import SECTION_CHOICES
from catface_keras.data import registry
from catface_keras.data.registry import CONVERT, EVALUATE, TRAIN

ROOT = pathlib.Path(__file__).resolve().parents[2]
METHODS = {TRAIN: "training_faces", CONVERT: "conversion_sets", EVALUATE: "evaluation_faces"}


@pytest.mark.parametrize("name", sorted(registry.SOURCES))
def test_each_entry_module_has_a_source_with_the_methods_of_its_roles(name):
    entry = registry.SOURCES[name]
    source = registry.face_source(name)
    for role in entry.roles:
        if (name, role) == ("synthetic", EVALUATE):
            continue  # `--data synthetic` draws its own faces (protocol_data)
        assert callable(getattr(source, METHODS[role], None)), (name, role)
    if CONVERT in entry.roles:
        assert callable(source.default_attributes)


def test_callers_take_their_choices_from_the_registry():
    assert SECTION_CHOICES["data.source"] == registry.source_names(TRAIN)
    assert registry.source_names(TRAIN) == (
        "synthetic", "celeba", "recordio", "image_folder", "tfrecord", "csv")
    assert data_cli.SOURCES == ("celeba", "recordio", "image_folder", "csv")
    assert data_cli.ATTRIBUTE_CSV_SOURCES == ("recordio", "image_folder")
    with pytest.raises(ValueError, match=r"Unknown face source.*Received: source='nope'"):
        registry.face_source("nope")


def test_evaluation_data_is_matched_to_its_source(tmp_path):
    (tmp_path / "faces").mkdir()
    for name in ("lfw.bin", "m.csv", "M.CSV", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert registry.evaluation_source("synthetic") == "synthetic"
    assert registry.evaluation_source(str(tmp_path / "faces")) == "image_folder"
    assert registry.evaluation_source(str(tmp_path / "lfw.bin")) == "insightface_bin"
    assert registry.evaluation_source(str(tmp_path / "m.csv")) == "csv"
    assert registry.evaluation_source(str(tmp_path / "M.CSV")) == "csv"
    with pytest.raises(ValueError, match=r"notes.txt: expected 'synthetic', a folder of identity "
                       r"folders, an insightface verification .bin file, a CSV manifest"):
        registry.evaluation_source(str(tmp_path / "notes.txt"))


def test_registry_and_data_checks_load_without_tensorflow():
    # As the `catface` command loads them (`catface_command` first; a plain
    # `import catface_keras` registers the models, which loads TensorFlow).
    script = ("import sys\n"
              "import catface_command\n"
              "import catface_keras.data.registry, catface_keras.data.checks\n"
              "sys.exit(3 if 'tensorflow' in sys.modules else 0)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               env=env, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
