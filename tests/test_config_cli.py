"""Config and output-path mistakes stop the CLI before TensorFlow loads and before any write."""

import os
import pathlib
import subprocess
import sys

import pytest

from catface_keras.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs the CLI as the `catface` command starts it (`catface_command`), in a fresh
# interpreter, and reports whether TensorFlow was imported by the time it returned.
PROBE = (
    "import sys\n"
    "from catface_command import main\n"
    "code = main(sys.argv[1:])\n"
    "print('tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    "sys.exit(code)\n"
)


def run_cli(*argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env,
        cwd=ROOT, timeout=120,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("model:\n  dropout: 1.5\n",
         "`model.dropout` must be in [0, 1). Received: model.dropout=1.5"),
        ("train:\n  epochs: 2\n  epochs: 3\n", "duplicate key `epochs` on line 3"),
        ("data:\n  source: image_folder\n  path: faces\n  attributes_csv: attrs.csv\n",
         "`data.attributes_csv` is not a file"),
    ],
)
def test_config_errors_come_before_tensorflow_and_leave_nothing(tmp_path, text, message):
    (tmp_path / "faces" / "alice").mkdir(parents=True)
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    result = run_cli("train", "--config", str(config), "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert "tensorflow loaded: False" in result.stdout
    assert not out.exists()


@pytest.mark.parametrize("command", ["demo", "train", "inspect", "degrade"])
def test_out_that_is_an_existing_file_is_refused_before_work(tmp_path, capsys, command):
    existing = tmp_path / "taken"
    existing.write_text("keep me")
    (tmp_path / "config.yaml").write_text("train:\n  epochs: 1\n")
    (tmp_path / "face.png").write_bytes(b"")
    (tmp_path / "model.keras").write_bytes(b"")
    argv = {
        "demo": ["demo", "--out", str(existing)],
        "train": ["train", "--config", str(tmp_path / "config.yaml"), "--out", str(existing)],
        "inspect": ["inspect", "--model", str(tmp_path / "model.keras"), "--images",
                    str(tmp_path / "face.png"), "--out", str(existing)],
        # degrade's --out is an image file: an existing directory, or a file where a
        # folder must be, is the mistake.
        "degrade": ["degrade", "--input", str(tmp_path / "face.png"), "--out",
                    str(existing / "grid.png")],
    }[command]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "argument --out" in error and str(existing) in error
    assert existing.read_text() == "keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "config.yaml", "face.png", "model.keras", "taken"
    ]


def test_degrade_out_without_an_image_extension_fails_before_any_work(tmp_path):
    face = tmp_path / "face.png"
    face.write_bytes(b"")  # never read: the --out check comes first
    result = run_cli("degrade", "--input", str(face), "--out", str(tmp_path / "grid"))
    assert result.returncode == 2
    assert "has no image extension; expected a name ending in .jpg, .jpeg, .png" in result.stderr
    assert "tensorflow loaded" not in result.stdout  # argparse exits while parsing
    assert sorted(path.name for path in tmp_path.iterdir()) == ["face.png"]


def test_degrade_out_that_is_a_directory_is_refused(tmp_path, capsys):
    (tmp_path / "grid.png").mkdir()
    with pytest.raises(SystemExit):
        main(["degrade", "--input", str(tmp_path), "--out", str(tmp_path / "grid.png")])
    assert "is a directory; --out must be an image file" in capsys.readouterr().err
