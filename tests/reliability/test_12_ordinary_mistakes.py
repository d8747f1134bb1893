"""Item 12 (reliability's part): a full disk in train and export, an empty `.bin`, and
`--out` naming a file for export and data convert."""

import errno
import pathlib

import keras
import pytest

from catface_keras.cli.main import main
from catface_keras.config import config_from_dict
from catface_keras.data.insightface_bin import read_verification_bin
from catface_keras.export import saved_model
from catface_keras.run_directory import OutputWriteError
from catface_keras.trainer import run_stage1

from reliability.helpers import fake_finished_run, leftovers, snapshot
from tiny_models import TINY_EXPERIMENT as TINY


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.slow
def test_disk_full_at_the_end_of_training_keeps_the_old_run(tmp_path, monkeypatch):
    out = fake_finished_run(tmp_path / "run")
    before = snapshot(out)
    monkeypatch.setattr(keras.Model, "save", disk_full)  # the final stage1.keras
    config = config_from_dict({**TINY, "train": {**TINY["train"], "epochs": 1}})
    # Before: the old run was deleted first, then a traceback.
    with pytest.raises(OutputWriteError, match=r"no space left on the device while writing .*"
                                               r"Nothing finished was lost"):
        run_stage1(config, out, overwrite=True, verbose=0)
    assert snapshot(out) == before


def test_disk_full_during_export_keeps_the_versions(tiny_model_path, tmp_path, monkeypatch,
                                                    capsys):
    base = tmp_path / "catface"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_text("version 1")

    class FullDisk:
        def write_out(self, path, verbose=True):
            pathlib.Path(path).mkdir()
            disk_full()

    monkeypatch.setattr(saved_model, "serving_archive", lambda model, *args: FullDisk())
    before = snapshot(base)
    assert main(["export", "--model", str(tiny_model_path), "--out", str(base)]) == 2
    error = capsys.readouterr().err
    assert "no space left on the device" in error and "unchanged" in error
    assert snapshot(base) == before and leftovers(base) == []


def test_empty_bin_is_named(tmp_path):
    (tmp_path / "lfw.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"lfw.bin is empty \(0 bytes\)"):
        read_verification_bin(tmp_path / "lfw.bin")


def test_out_naming_a_file_is_refused(face_folder, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("the user's file")
    model = tmp_path / "stage1.keras"
    model.write_bytes(b"a model")
    assert main(["export", "--model", str(model), "--out", str(taken)]) == 2
    assert f"--out must be a directory (the model's base path), but {taken} is a file" in (
        capsys.readouterr().err)
    assert main(["data", "convert", "--source", "image_folder", "--input", str(face_folder),
                 "--out", str(taken / "shards")]) == 2
    assert f"--out must be a directory, but {taken} is a file" in capsys.readouterr().err
    assert taken.read_text() == "the user's file"
