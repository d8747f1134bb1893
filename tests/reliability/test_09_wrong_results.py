"""Item 9: conversions that wrote nothing, stray labels, unchecked TFRecord metadata."""

import json

import pytest
from data.face_writers import encode, face_image, pack_payload, write_recordio

from catface_keras.cli.main import main
from catface_keras.data.recordio import InsightFaceRecords
from catface_keras.data.tfrecord import read_metadata, validate_shards, write_tfrecord_shards
from catface_keras.data.image_folder import read_image_folder

from reliability.helpers import leftovers, snapshot


def test_convert_of_undecodable_images_fails(tmp_path, capsys):
    root = tmp_path / "faces"
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "1.jpg").write_bytes(b"\xff\xd8 broken")
    out = tmp_path / "shards"
    # Before: "wrote 0 images", exit 0, and a dataset of nothing.
    argv = ["data", "convert", "--source", "image_folder", "--input", str(root), "--out", str(out)]
    assert main(argv) == 2
    assert "None of the 1 images decodes" in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_stray_record_label_is_refused(tmp_path):
    face = encode(face_image(0, 16, 16))
    labels = [0, 0, 1, 1, 2, 2, 9000]
    write_recordio(tmp_path / "train.rec",
                   {key: pack_payload(label, face) for key, label in enumerate(labels, 1)})
    # Before: 9001 classes, 8997 of them without an image.
    with pytest.raises(ValueError, match=r"train.rec: record 7 has label 9000: .*9001 classes, "
                                         r"but 8997 of them \(the first: 3\) have no image"):
        InsightFaceRecords(tmp_path / "train.rec")


def test_tfrecord_counts_and_attribute_values_are_checked(face_folder, tmp_path):
    shards = tmp_path / "shards"
    write_tfrecord_shards(read_image_folder(face_folder, None, ["Male"]), shards, num_shards=2)
    metadata = json.loads((shards / "dataset.json").read_text())
    metadata["num_examples"] = 13
    (shards / "dataset.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"`num_examples` is 13, but the shards list 12"):
        read_metadata(shards)
    metadata["num_examples"] = 12
    metadata["shards"][0]["num_examples"] = 7
    metadata["shards"][1]["num_examples"] = 5
    (shards / "dataset.json").write_text(json.dumps(metadata))
    before = snapshot(shards)
    with pytest.raises(ValueError, match=r"shard-00000-of-00002.tfrecord holds 6 records, but "
                                         r"dataset.json lists 7"):
        validate_shards(shards)
    assert snapshot(shards) == before
