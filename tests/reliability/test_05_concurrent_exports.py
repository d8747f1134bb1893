"""Item 5: two exports into one folder at the same time."""

import pathlib
import threading

import pytest

from catface_keras.export import saved_model


class SlowArchive:
    """Stands in for the Keras export; both exports are inside `write_out` at once."""

    barrier = None

    def __init__(self, content):
        self.content = content

    def write_out(self, path, verbose=True):
        pathlib.Path(path).mkdir()
        pathlib.Path(path, "saved_model.pb").write_text(self.content)
        try:
            self.barrier.wait(timeout=30)
        except threading.BrokenBarrierError:  # the other export was refused
            pass


@pytest.fixture
def slow_archive(monkeypatch):
    SlowArchive.barrier = threading.Barrier(2)
    contents = iter(["first", "second"])
    lock = threading.Lock()

    def archive(model, *args):
        with lock:
            return SlowArchive(next(contents))

    monkeypatch.setattr(saved_model, "serving_archive", archive)
    monkeypatch.setattr(saved_model, "write_warmup_requests", lambda *args: None)


def export_together(base, **kwargs):
    results, errors = [], []

    def export():
        try:
            results.append(saved_model.export_saved_model(None, base, **kwargs))
        except FileExistsError as error:
            errors.append(error)
            SlowArchive.barrier.abort()

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def test_two_exports_get_two_versions(tmp_path, slow_archive):
    base = tmp_path / "catface"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_text("the user's version 1")
    # Before: both reported .../2 and the second replaced the first.
    results, errors = export_together(base)
    assert errors == []
    assert sorted(path.name for path in results) == ["2", "3"]
    assert {(base / v / "saved_model.pb").read_text() for v in ("2", "3")} == {"first", "second"}
    assert (base / "1" / "saved_model.pb").read_text() == "the user's version 1"
    assert sorted(path.name for path in base.iterdir()) == ["1", "2", "3"]


def test_two_exports_of_one_explicit_version_fail_clearly(tmp_path, slow_archive):
    base = tmp_path / "catface"
    results, errors = export_together(base, version=5)
    assert [path.name for path in results] == ["5"] and len(errors) == 1
    assert "another export of version 5 is running" in str(errors[0])
    assert (base / "5" / "saved_model.pb").read_text() == "first"
    assert sorted(path.name for path in base.iterdir()) == ["5"]
