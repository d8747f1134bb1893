"""Round two, item 8: a config whose schedule or batch cannot run is refused while the
config is read, before TensorFlow loads."""

import json

import pytest

from catface_keras.cli.main import main
from catface_keras.config import ConfigError, check_data_files, load_config


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("key", ["train:\n  epochs", "stage2:\n  epochs", "train:\n  batch_size"])
def test_an_absurd_count_is_refused_with_the_key(tmp_path, key, capsys):
    config = write(tmp_path, f"data:\n  source: synthetic\n{key}: 100000000000000000000\n")
    name = key.replace(":\n  ", ".")
    # Before: accepted, then an overflow inside TensorFlow once training started.
    with pytest.raises(ConfigError, match=rf"`{name}` must be at most \d+"):
        load_config(config)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert f"`{name}` must be at most" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_absurd_epochs_override_is_refused(tmp_path, capsys):
    config = write(tmp_path, "data:\n  source: synthetic\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"),
                 "--epochs", str(10**20)]) == 2
    assert "`train.epochs` must be at most" in capsys.readouterr().err


def _image_folder(root, count):
    for index in range(count):
        path = root / f"id{index % 2}" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # listed, not decoded
    return root


@pytest.mark.parametrize("source", ["image_folder", "tfrecord", "recordio", "celeba"])
def test_a_batch_larger_than_the_data_is_refused_before_any_work(tmp_path, source):
    if source == "image_folder":
        path = _image_folder(tmp_path / "faces", 5)
    elif source == "tfrecord":
        path = tmp_path / "shards"
        path.mkdir()
        (path / "dataset.json").write_text(json.dumps({"num_examples": 5}))
    elif source == "celeba":
        path = tmp_path / "celeba"
        path.mkdir()
        (path / "identity_CelebA.txt").write_text(
            "".join(f"{index:06d}.jpg {index % 2}\n" for index in range(5)))
    else:
        path = tmp_path / "train.rec"
        path.write_bytes(b"")
        (tmp_path / "train.idx").write_text("".join(f"{key}\t{key * 8}\n" for key in range(5)))
    config = load_config(write(
        tmp_path, f"data:\n  source: {source}\n  path: {path}\ntrain:\n  batch_size: 8\n"
    ))
    # Before: accepted here; the reader failed after TensorFlow loaded.
    with pytest.raises(ConfigError, match=r"`train.batch_size` is larger than the 5 images"):
        check_data_files(config)
    check_data_files(config.replace("train", batch_size=5))
