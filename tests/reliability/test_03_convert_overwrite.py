"""Item 3: `data convert --overwrite` writes the new set beside the old one."""

import pytest

from catface_keras.cli.main import main
from catface_keras.data import tfrecord

from reliability.helpers import leftovers, snapshot


def test_failure_while_writing_keeps_the_old_shards(face_folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "shards"
    argv = ["data", "convert", "--source", "image_folder", "--input", str(face_folder),
            "--attribute-names", "Male", "--out", str(out), "--shards", "2", "--image-size", "16"]
    assert main(argv) == 0
    (out / "README").write_text("the user's notes")
    before = snapshot(out)
    written = []

    def crash_after_three(*fields):
        if len(written) == 3:
            raise RuntimeError("simulated crash while writing shard 0")
        written.append(fields)
        return original(*fields)

    original = tfrecord._example
    monkeypatch.setattr(tfrecord, "_example", crash_after_three)
    # Before: the old dataset.json and shards were deleted first, and a .partial shard stayed.
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(argv + ["--overwrite", "--image-size", "20"])
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(tfrecord, "_example", original)
    assert main(argv + ["--overwrite", "--image-size", "20"]) == 0
    assert tfrecord.read_metadata(out)["image_size"] == 20
    assert (out / "README").read_text() == "the user's notes"
    assert leftovers(tmp_path) == []
    capsys.readouterr()
