"""CSV manifests (`path,identity[,attributes]`): reading, training, conversion and evaluation."""

import json
import logging
import re

import tensorflow as tf
import pytest
import yaml
from data.face_writers import face_image, write_image

from catface_keras.cli.main import main
from catface_keras.config import ConfigError, DataConfig, check_data_files, config_from_dict
from catface_keras.data.csv_manifest import manifest_attributes, read_csv_manifest
from catface_keras.data.sources import load_training_data
from catface_keras.data.tfrecord import read_tfrecord_dataset

# Identities in file order; sorted text order makes them classes Zoe 0, alice 1, bob 2, carol 3.
PEOPLE = ["bob", "alice", "Zoe", "carol"]
CLASS = {"Zoe": 0, "alice": 1, "bob": 2, "carol": 3}


def write_manifest(folder, people=PEOPLE, per_person=4, size=32, corrupt=True):
    """Images under `folder/images/<person>/` and `folder/faces.csv` naming them with a
    Male column (1/0, bob's unknown as an empty cell) and an Eyeglasses column (-1 unknown)."""
    rows = ["path,identity,Male,Eyeglasses"]
    for number, person in enumerate(people):
        for index in range(per_person):
            relative = f"images/{person}/{index}.png"
            write_image(folder / relative, face_image(10 * number + index, size, size))
            male = "" if person == "bob" else str(number % 2)
            rows.append(f"{relative},{person},{male},{-1 if index else 1}")
    if corrupt:
        (folder / "images" / "alice" / "bad.jpg").write_bytes(b"\xff\xd8 broken")
        rows.append("images/alice/bad.jpg,alice,1,0")
    (folder / "faces.csv").write_text("\n".join(rows) + "\n")
    return folder / "faces.csv"


def test_rows_become_files_with_sorted_identities_and_attribute_labels(tmp_path):
    manifest = write_manifest(tmp_path, corrupt=False)
    faces = read_csv_manifest(manifest, ["Eyeglasses", "Male"])
    assert len(faces) == 16 and faces.num_classes == 4
    assert faces.paths[0] == str(tmp_path / "images" / "bob" / "0.png")
    expected_classes = [CLASS[person] for person in PEOPLE for _ in range(4)]
    assert faces.identities.tolist() == expected_classes
    assert faces.attribute_names == ("Eyeglasses", "Male")
    # bob's empty Male cells and the -1 Eyeglasses cells are unknown (-1).
    assert faces.attributes[:4].tolist() == [[1, -1], [-1, -1], [-1, -1], [-1, -1]]
    assert faces.attributes[4:8].tolist() == [[1, 1], [-1, 1], [-1, 1], [-1, 1]]  # alice
    assert faces.attributes[8:12, 1].tolist() == [0, 0, 0, 0]  # Zoe
    assert manifest_attributes(manifest) == ("Male", "Eyeglasses")
    # Paths are relative to the manifest's folder, not the working directory; `..` that
    # stays inside it is fine.
    (tmp_path / "x.csv").write_text("path,identity\nimages/bob/../alice/1.png,a\n")
    assert read_csv_manifest(tmp_path / "x.csv", ["Male"]).paths == (
        str(tmp_path / "images" / "alice" / "1.png"),)


def test_a_manifest_without_attribute_columns_leaves_every_attribute_unknown(tmp_path):
    write_image(tmp_path / "a.png", face_image(0, 16, 16))
    write_image(tmp_path / "b.png", face_image(1, 16, 16))
    (tmp_path / "m.csv").write_text("\ufeffidentity,path\n7,a.png\n10,b.png\n")  # BOM: Excel
    faces = read_csv_manifest(tmp_path / "m.csv", ["Male", "Bald"])
    assert faces.attributes.tolist() == [[-1, -1], [-1, -1]]
    assert faces.identities.tolist() == [1, 0]  # "10" < "7" as text
    assert manifest_attributes(tmp_path / "m.csv") == ()


@pytest.mark.parametrize("rows, line, message", [
    (["path,identity,Male", "a.png,x,1", "b.png,y,2"], 3,
     "`Male` must be 1, 0, -1 or empty (unknown). Received: '2'"),
    (["path,identity,Male", "a.png,x"], 2, "expected 3 fields like the header, found 2"),
    (["path,identity", "a.png,"], 2, "`path` and `identity` must not be empty"),
    (["file,identity", "a.png,x"], 1, "header must have `path` and `identity` columns"),
    (["path,identity,male", "a.png,x,1"], 1, "unknown column(s) ['male']"),
    (["path,identity,Male,Male", "a.png,x,1,1"], 1, "column(s) ['Male'] appear more than once"),
    (["path,identity,Bald", "a.png,x,1"], 1, "no column for attribute(s) ['Male']"),
    (["path,identity", "a.png,x", "../outside.png,y"], 3,
     "`path` leaves the manifest's folder"),
    (["path,identity", "{absolute},x"], 2, "`path` must be relative to the manifest's folder"),
    (["path,identity", "a.png,x", "missing.png,y"], 3, "no image"),
    (["path,identity", "a.png,x", "b.png,y", "./a.png,z"], 4, "names the image of line 2"),
])
def test_malformed_manifests_name_the_file_and_line(tmp_path, rows, line, message):
    folder = tmp_path / "set"
    for name in ("a.png", "b.png"):
        write_image(folder / name, face_image(0, 16, 16))
    write_image(tmp_path / "outside.png", face_image(1, 16, 16))
    manifest = folder / "m.csv"
    text = "\n".join(rows).replace("{absolute}", str(tmp_path / "outside.png"))
    manifest.write_text(text + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{manifest}:{line}: ") + ".*"
                       + re.escape(message)):
        read_csv_manifest(manifest, ["Male"])


def test_an_empty_manifest_and_a_folder_are_refused(tmp_path):
    (tmp_path / "m.csv").write_text("path,identity,Male\n\n")
    with pytest.raises(ValueError, match=r"m.csv lists no images"):
        read_csv_manifest(tmp_path / "m.csv", ["Male"])
    with pytest.raises(ValueError, match=r"Cannot read CSV manifest"):
        read_csv_manifest(tmp_path, ["Male"])
    # A binary file: neither a crash nor a traceback from the csv module.
    (tmp_path / "b.csv").write_bytes(b"path,identity\n\xff\xfe,x\n")
    with pytest.raises(ValueError, match=r"b.csv: a CSV manifest must be UTF-8 text"):
        read_csv_manifest(tmp_path / "b.csv", ["Male"])
    (tmp_path / "long.csv").write_text("path,identity\n" + "a" * 200_000 + ",x\n")
    with pytest.raises(ValueError, match=r"long.csv:2: not a readable CSV row"):
        read_csv_manifest(tmp_path / "long.csv", ["Male"])


def test_training_data_skips_and_counts_an_undecodable_image(tmp_path):
    manifest = write_manifest(tmp_path, size=16)
    data = DataConfig(source="csv", path=str(manifest), image_size=16)
    train, heldout = load_training_data(data, ["Male"])
    assert heldout is None and train.num_examples == 17 and train.num_classes == 4
    assert train.skipped.count == 1 and "bad.jpg" in train.skipped.names[0]
    with pytest.raises(ValueError, match="a CSV manifest holds its own attribute columns"):
        load_training_data(DataConfig(source="csv", path=str(manifest), image_size=16,
                                      attributes_csv=str(manifest)), ["Male"])


def test_config_names_the_csv_source_and_its_missing_file(tmp_path):
    config = config_from_dict({"data": {"source": "csv", "path": str(tmp_path / "no.csv")}})
    with pytest.raises(ConfigError, match=r"`data.path` does not exist"):
        check_data_files(config)


TINY = {
    "model": {"backbone": "ir_tiny", "embedding_dim": 16, "dropout": 0.1,
              "attribute_names": ["Male", "Eyeglasses"]},
    "train": {"epochs": 1, "batch_size": 8, "distribution": "none"},
    "evaluation": {"num_pairs": 150, "batch_size": 32},
}


def test_catface_train_then_evaluate_on_a_manifest(tmp_path, capsys, caplog):
    manifest = write_manifest(tmp_path)
    config = {**TINY, "data": {"source": "csv", "path": "faces.csv", "image_size": 32}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="catface_keras.data.decoding"):
        assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--out", str(out)]) == 0
    assert any("1 undecodable image(s) skipped" in r.getMessage() and "bad.jpg" in r.getMessage()
               for r in caplog.records)
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["path"] == str(manifest)
    assert "data.heldout_path" in json.loads((out / "metrics.json").read_text())["stage1"][
        "skipped"]
    capsys.readouterr()
    results_dir = tmp_path / "eval"
    assert main(["evaluate", "--model", str(out / "stage1.keras"), "--data", str(manifest),
                 "--out", str(results_dir), "--pairs", "20", "--conditions", "clean"]) == 0
    results = json.loads((results_dir / "results.json").read_text())
    assert results["protocols"] == ["verification", "templates", "identification", "attributes"]
    assert results["data"]["source"] == str(manifest)
    assert results["data"]["num_images"] == 16 and results["data"]["num_identities"] == 4
    assert results["data"]["skipped_images"] == 1
    attributes = results["results"]["stage1"]["attributes"]["clean"]
    assert set(attributes["accuracy"]) == {"Male", "Eyeglasses"}
    # A manifest does not take a separate attribute CSV or a pair list.
    assert main(["evaluate", "--model", str(out / "stage1.keras"), "--data", str(manifest),
                 "--out", str(tmp_path / "e2"), "--attributes-csv", str(manifest)]) == 2
    assert "holds its own attribute columns" in capsys.readouterr().err


def test_catface_data_convert_writes_the_manifest_as_shards(tmp_path, capsys):
    manifest = write_manifest(tmp_path, size=20)
    out = tmp_path / "shards"
    argv = ["data", "convert", "--source", "csv", "--input", str(manifest), "--out", str(out),
            "--shards", "2", "--image-size", "16"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wrote 16 images of 4 identities in 2 shard(s)" in printed
    assert "skipped 1 undecodable" in printed and "bad.jpg" in printed
    # The manifest's own columns are the default attributes.
    assert json.loads((out / "dataset.json").read_text())["attribute_names"] == [
        "Male", "Eyeglasses"]
    back = sorted((image.tobytes(), int(identity), tuple(labels))
                  for image, identity, labels in read_tfrecord_dataset(out).as_numpy_iterator())
    faces = read_csv_manifest(manifest)
    assert sorted((int(i), tuple(a)) for i, a in zip(faces.identities[:16], faces.attributes[:16])
                  ) == sorted((identity, labels) for _, identity, labels in back)
    assert all(len(image) == 16 * 16 * 3 for image, _, _ in back)
    assert main(argv + ["--overwrite", "--attributes-csv", str(manifest)]) == 2
    assert "--attributes-csv is for recordio and image_folder; csv has its own" in (
        capsys.readouterr().err)


def test_training_from_converted_manifest_shards_matches_the_labels(tmp_path, capsys):
    manifest = write_manifest(tmp_path, size=16, corrupt=False)
    assert main(["data", "convert", "--source", "csv", "--input", str(manifest), "--out",
                 str(tmp_path / "shards"), "--attribute-names", "Male"]) == 0
    data = DataConfig(source="tfrecord", path=str(tmp_path / "shards"), image_size=16)
    train, _ = load_training_data(data, ["Male"])
    assert (train.num_examples, train.num_classes) == (16, 4)
    labels = [(int(identity), int(attributes[0]))
              for _, identity, attributes in train.faces(tf.constant([0, 0], tf.int64))
              .as_numpy_iterator()]
    faces = read_csv_manifest(manifest, ["Male"])
    assert sorted(labels) == sorted(zip(faces.identities.tolist(), faces.attributes[:, 0].tolist()))
