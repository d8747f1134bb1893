"""Versioned, all-or-nothing SavedModel directories, and the `catface export` command."""

import pathlib

import pytest

from catface_keras.cli.main import main
from catface_keras.export import saved_model


def test_next_version_counts_integer_directories(tmp_path):
    assert saved_model.next_version(tmp_path / "missing") == 1
    assert saved_model.next_version(tmp_path) == 1
    for name in ("1", "3", "7a", ".9.partial-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a version")
    assert saved_model.next_version(tmp_path) == 4


def test_failed_export_leaves_no_version_directory(keras_model, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("simulated failure while writing the warm-up file")

    monkeypatch.setattr(saved_model, "write_warmup_requests", fail)
    base = tmp_path / "catface"
    with pytest.raises(RuntimeError, match="simulated failure"):
        saved_model.export_saved_model(keras_model, base)
    assert list(base.iterdir()) == []  # no version, no scratch directory


class _Archive:
    """Stands in for the Keras export (seconds) where only the directory logic is tested."""

    def __init__(self, content):
        self.content = content

    def write_out(self, path, verbose=True):
        pathlib.Path(path).mkdir()
        pathlib.Path(path, "saved_model.pb").write_text(self.content)


@pytest.fixture
def fake_archive(monkeypatch):
    def use(content):
        monkeypatch.setattr(saved_model, "serving_archive", lambda model: _Archive(content))

    return use


def version_with(base, version, content):
    path = base / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_text(content)
    return path


def test_versions_increment(tmp_path, fake_archive):
    base = tmp_path / "catface"
    fake_archive("new")
    assert saved_model.export_saved_model(None, base) == base / "1"
    version_with(base, 3, "old")
    assert saved_model.export_saved_model(None, base) == base / "4"
    assert saved_model.export_saved_model(None, base, version=2) == base / "2"
    assert sorted(path.name for path in base.iterdir()) == ["1", "2", "3", "4"]
    assert (base / "4" / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_existing_version_is_refused_without_overwrite(tmp_path, fake_archive):
    base = tmp_path / "catface"
    version_with(base, 1, "old")
    fake_archive("new")
    with pytest.raises(FileExistsError, match="1 exists; pass overwrite=True"):
        saved_model.export_saved_model(None, base, version=1)
    assert (base / "1" / "saved_model.pb").read_text() == "old"
    saved_model.export_saved_model(None, base, version=1, overwrite=True)
    assert (base / "1" / "saved_model.pb").read_text() == "new"
    assert [path.name for path in base.iterdir()] == ["1"]


def test_failed_overwrite_keeps_the_old_version(tmp_path, fake_archive, monkeypatch):
    base = tmp_path / "catface"
    version_with(base, 1, "old")
    fake_archive("new")

    def fail(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(saved_model, "write_warmup_requests", fail)
    with pytest.raises(RuntimeError):
        saved_model.export_saved_model(None, base, version=1, overwrite=True)
    assert (base / "1" / "saved_model.pb").read_text() == "old"
    assert [path.name for path in base.iterdir()] == ["1"]


def test_bad_version_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"`version` must be a non-negative int.*version=-1"):
        saved_model.export_saved_model(None, tmp_path, version=-1)


def test_cli_refuses_an_existing_version(exported, keras_model_path, capsys):
    base = exported.parent
    before = sorted(path.name for path in base.iterdir())
    code = main(["export", "--model", str(keras_model_path), "--out", str(base), "--version", "1"])
    assert code == 2
    assert f"{exported} exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(path.name for path in base.iterdir()) == before
    assert (exported / "saved_model.pb").is_file()


def test_cli_reports_a_missing_model(tmp_path, capsys):
    code = main(["export", "--model", str(tmp_path / "none.keras"), "--out", str(tmp_path)])
    assert code == 2
    assert "none.keras does not exist" in capsys.readouterr().err
