"""Item 10: bad training data named (file and record) before the first step."""

import json
import struct

import pytest
import tensorflow as tf
from data.face_writers import encode, face_image, write_insightface_rec

from catface_keras.config import DataConfig
from catface_keras.data import tfrecord
from catface_keras.data.recordio import InsightFaceRecords
from catface_keras.data.sources import load_training_data

from reliability.helpers import snapshot

NAMES = ["Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes"]


def write_shard(directory, attributes_per_record):
    """One shard of 16 px faces whose records carry the given attribute lists."""
    directory.mkdir(parents=True, exist_ok=True)
    name = "shard-00000-of-00001.tfrecord"
    face = encode(face_image(0, 16, 16))
    with tf.io.TFRecordWriter(str(directory / name)) as writer:
        for index, attributes in enumerate(attributes_per_record):
            writer.write(tfrecord._example(f"f{index}", face, 16, 16, index % 2, attributes))
    metadata = {"format": tfrecord.FORMAT, "version": 1, "num_examples": len(attributes_per_record),
                "num_classes": 2, "attribute_names": NAMES, "image_size": 16,
                "shards": [{"file": name, "num_examples": len(attributes_per_record)}]}
    (directory / "dataset.json").write_text(json.dumps(metadata))
    return directory / name


def load(directory):
    return load_training_data(DataConfig(source="tfrecord", path=str(directory), image_size=16),
                              NAMES)


def test_shard_with_fewer_attributes_is_named_before_training(tmp_path):
    write_shard(tmp_path / "shards", [[1, 0, 1]] * 8)
    before = snapshot(tmp_path / "shards")
    # Before: the process aborted mid-epoch (exit 134) without naming the file.
    with pytest.raises(ValueError, match=r"shard-00000-of-00001.tfrecord: record 0 has 3 attribute "
                                         r"values, but dataset.json names 5"):
        load(tmp_path / "shards")
    assert snapshot(tmp_path / "shards") == before


def test_attribute_values_out_of_range_are_named(tmp_path):
    write_shard(tmp_path / "shards", [[1, 0, 1, 0, 1]] * 7 + [[1, 0, 7, 0, 1]])
    with pytest.raises(ValueError, match=r"record 7 has attribute values \[1, 0, 7, 0, 1\]"):
        load(tmp_path / "shards")


def test_truncated_shard_is_named_before_training(tmp_path):
    shard = write_shard(tmp_path / "shards", [[1, 0, 1, 0, 1]] * 8)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 100])
    # Before: "corrupted record at ..." as a TensorFlow traceback in the middle of an epoch.
    with pytest.raises(ValueError, match=r"of-00001.tfrecord: record 7 .* is truncated"):
        load(tmp_path / "shards")


def test_recordio_label_outside_the_classes_is_named(tmp_path):
    faces = [encode(face_image(i, 16, 16), ".jpg") for i in range(4)]
    write_insightface_rec(tmp_path / "train.rec", [0, 0, 1, 1], faces)
    rec = (tmp_path / "train.rec").read_bytes()
    # Record 3 (identity 1) relabelled 5: outside the 2 classes that record 0 announces.
    # Its float label sits in the flag labels right after the 24-byte header.
    offsets = [int(line.split()[1]) for line in (tmp_path / "train.idx").read_text().splitlines()]
    position = offsets[3] + 8 + 24
    assert struct.unpack_from("<f", rec, position)[0] == 1.0
    relabelled = rec[:position] + struct.pack("<f", 5.0) + rec[position + 4:]
    (tmp_path / "train.rec").write_bytes(relabelled)
    with pytest.raises(ValueError, match=r"train.rec: record 3 has label 5: outside the 2 classes"):
        InsightFaceRecords(tmp_path / "train.rec")
