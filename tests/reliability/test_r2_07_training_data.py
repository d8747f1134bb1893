"""Round two, item 7: every training record checked before the first step, with the file and
record named (the old check read each shard's first and last records only)."""

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

NAMES = ["Male", "Bald", "Big_Nose"]
SHARD = "shard-00000-of-00001.tfrecord"
GOOD = [1, 0, -1]


def write_shard(directory, records):
    """One shard of 8 records; `records` maps an index to (identity, attributes, with image)."""
    directory.mkdir(parents=True, exist_ok=True)
    face = encode(face_image(0, 16, 16))
    with tf.io.TFRecordWriter(str(directory / SHARD)) as writer:
        for index in range(8):
            identity, attributes, image = records.get(index, (index % 2, GOOD, True))
            if image:
                writer.write(tfrecord._example(f"f{index}", face, 16, 16, identity, attributes))
                continue
            feature = {
                "identity": tf.train.Feature(int64_list=tf.train.Int64List(value=[identity])),
                "attributes": tf.train.Feature(int64_list=tf.train.Int64List(value=attributes)),
            }
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    metadata = {"format": tfrecord.FORMAT, "version": 1, "num_examples": 8, "num_classes": 2,
                "attribute_names": NAMES, "image_size": 16,
                "shards": [{"file": SHARD, "num_examples": 8}]}
    (directory / "dataset.json").write_text(json.dumps(metadata))
    return directory / SHARD


def load(directory):
    return load_training_data(DataConfig(source="tfrecord", path=str(directory), image_size=16),
                              NAMES)


@pytest.mark.parametrize("records, message", [
    ({5: (7, GOOD, True)}, r"record 5 has identity \[7\], outside the 2 classes"),
    ({3: (1, [1, 7, 0], True)}, r"record 3 has attribute values \[1, 7, 0\]; expected 1, 0 or -1"),
    ({4: (0, [1, 0], True)}, r"record 4 has 2 attribute values, but dataset.json names 3"),
    ({2: (0, GOOD, False)}, r"record 2 has no `image/encoded` image"),
], ids=["identity out of range", "attribute value 7", "attribute count", "no image"])
def test_a_bad_record_in_mid_shard_is_named_before_training(tmp_path, records, message):
    write_shard(tmp_path / "shards", records)
    before = snapshot(tmp_path / "shards")
    # Before: trained silently (value 7), or a TensorFlow traceback mid-epoch.
    with pytest.raises(ValueError, match=rf"{SHARD}: {message}"):
        load(tmp_path / "shards")
    assert snapshot(tmp_path / "shards") == before


def test_a_record_with_a_bad_checksum_names_the_file_and_record(tmp_path):
    shard = write_shard(tmp_path / "shards", {})
    start = tfrecord._record_offsets(shard)[3]
    data = bytearray(shard.read_bytes())
    data[start + 40] ^= 0xFF  # inside record 3's data
    shard.write_bytes(bytes(data))
    # Before: "corrupted record at N" as a traceback, no file named.
    with pytest.raises(ValueError, match=rf"{SHARD}: record 3 \(at byte {start}\) fails its "
                                         r"checksum"):
        load(tmp_path / "shards")


def test_a_bad_held_out_shard_is_named_before_training(tmp_path):
    write_shard(tmp_path / "shards", {})
    shard = write_shard(tmp_path / "shards" / tfrecord.HELDOUT_DIRECTORY, {})
    start = tfrecord._record_offsets(shard)[6]
    data = bytearray(shard.read_bytes())
    data[start + 40] ^= 0xFF
    shard.write_bytes(bytes(data))
    # Before: TensorFlow's "corrupted record" traceback while the held-out faces were decoded.
    with pytest.raises(ValueError, match=rf"heldout/{SHARD}: record 6 \(at byte {start}\) fails "
                                         r"its checksum"):
        load(tmp_path / "shards")


def test_a_truncated_recordio_record_in_mid_file_is_named(tmp_path):
    faces = [encode(face_image(i, 16, 16), ".jpg") for i in range(4)]
    write_insightface_rec(tmp_path / "train.rec", [0, 0, 1, 1], faces)
    rec = (tmp_path / "train.rec").read_bytes()
    offsets = [int(line.split()[1]) for line in (tmp_path / "train.idx").read_text().splitlines()]
    # Record 2 announces 40 bytes more than it holds: it runs into record 3.
    lrec = struct.unpack_from("<I", rec, offsets[2] + 4)[0]
    length = (lrec & ((1 << 29) - 1)) + 40
    damaged = bytearray(rec)
    struct.pack_into("<I", damaged, offsets[2] + 4, (lrec >> 29 << 29) | length)
    (tmp_path / "train.rec").write_bytes(bytes(damaged))
    # Before: accepted; a traceback when training reached record 2.
    with pytest.raises(ValueError, match=rf"train.rec: record 2 \(at byte offset {offsets[2]}\) "
                                         rf"is truncated: it announces {length} bytes, but the "
                                         r"next record starts"):
        InsightFaceRecords(tmp_path / "train.rec")


def test_a_whole_dataset_still_loads(tmp_path):
    write_shard(tmp_path / "shards", {})
    write_shard(tmp_path / "shards" / tfrecord.HELDOUT_DIRECTORY, {})
    train, heldout = load(tmp_path / "shards")
    assert train.num_examples == 8 and train.num_classes == 2
    assert len(heldout.images) == 8
