"""`import catface_keras` registers every saved class: `keras.models.load_model` reads each
file the package writes in a fresh process; the `catface` command defers it."""

import ast
import os
import pathlib
import subprocess
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "catface_keras"

LOAD = (
    "import sys\n"
    "{imports}"
    "import keras\n"
    "for path in sys.argv[1:]:\n"
    "    print(type(keras.models.load_model(path)).__name__)\n"
)


def run_python(script, *argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env,
        cwd=ROOT, timeout=300,
    )


@pytest.fixture(scope="module")
def saved_files(tiny_model_path, tiny_training_path, tmp_path_factory):
    """Stage 1, a stage-1 checkpoint, stage 2 and an imported backbone."""
    from catface_keras.atomic_files import save_model_atomically
    from catface_keras.backbones.iresnet import IResNetEmbedder
    from catface_keras.models.fusion import FusionModel
    from catface_keras.models.loading import load_model

    folder = tmp_path_factory.mktemp("registration")
    keras.utils.set_random_seed(0)
    save_model_atomically(
        FusionModel(load_model(tiny_model_path), fusion="catf"), folder / "stage2.keras"
    )
    save_model_atomically(
        IResNetEmbedder(backbone="ir_tiny", image_size=32, embedding_dim=8), folder / "b.keras"
    )
    return [tiny_model_path, tiny_training_path, folder / "stage2.keras", folder / "b.keras"]


def test_keras_loads_every_file_after_import_catface_keras(saved_files):
    result = run_python(LOAD.format(imports="import catface_keras\n"), *map(str, saved_files))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        "MultiBranchModel", "MultiBranchTraining", "FusionModel", "IResNetEmbedder"
    ]


def test_without_the_import_keras_cannot_load_them(saved_files):
    result = run_python(LOAD.format(imports=""), str(saved_files[0]))
    assert result.returncode != 0
    assert "catface>MultiBranchModel" in result.stderr


def test_the_command_start_defers_the_registration():
    result = run_python(
        "import sys\n"
        "import catface_command, catface_keras\n"
        "sys.exit(3 if 'tensorflow' in sys.modules else 0)\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _registering_modules():
    """Modules of the package that hold a `register_keras_serializable` class or function."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "register_keras_serializable":
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
                break
    return found


def _imported_by(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def test_serializable_imports_every_registering_module():
    registering = _registering_modules()
    assert "catface_keras.models.multibranch" in registering  # the scan finds them
    assert registering - _imported_by(PACKAGE / "serializable.py") == set()
