import struct

import numpy as np
import pytest
from data.face_writers import (
    MAGIC_BYTES,
    encode,
    face_image,
    pack_payload,
    record_pieces,
    write_insightface_rec,
    write_recordio,
)

from catface_keras.data.decoding import decode_image
from catface_keras.data.recordio import (
    InsightFaceRecords,
    RecordIOReader,
    read_index,
    unpack_record,
)


def test_split_records_are_restored_byte_exact(tmp_path):
    # The magic at aligned offsets 4 and 12 splits the record in three pieces;
    # at offset 21 (unaligned) and at the very end it does not split.
    with_magic = b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"ijklm" + MAGIC_BYTES + b"xyz"
    assert [flag for flag, _ in record_pieces(with_magic)] == [1, 2, 3]
    ends_with_magic = b"0123" + MAGIC_BYTES
    payloads = {7: b"plain", 3: with_magic, 11: ends_with_magic, 5: MAGIC_BYTES, 9: b""}
    write_recordio(tmp_path / "x.rec", payloads)
    with RecordIOReader(tmp_path / "x.rec") as reader:
        assert reader.keys.tolist() == [3, 5, 7, 9, 11] and 7 in reader and 4 not in reader
        for key, payload in payloads.items():
            assert reader.read(key) == payload, key
        with pytest.raises(KeyError, match="no key 4"):
            reader.read(4)


def test_header_and_float_labels_are_parsed():
    header, image = unpack_record(pack_payload(0, b"IMG", flag_labels=[3.0, 1.0], record_id=9))
    assert header.flag == 2 and header.label.tolist() == [3.0, 1.0] and header.id == 9
    assert image == b"IMG"
    header, image = unpack_record(pack_payload(42, b"JPEG"))
    assert header.flag == 0 and header.label.tolist() == [42.0] and image == b"JPEG"


def test_insightface_layout_gives_images_labels_and_classes(tmp_path):
    identities = [0, 0, 1, 2, 2, 2]
    faces = [face_image(seed, 24, 24) for seed in range(6)]
    # A face whose PNG bytes contain the magic number at an aligned offset.
    encoded = [encode(face) for face in faces]
    encoded[4] = encoded[4] + b"\0" * (-len(encoded[4]) % 4) + MAGIC_BYTES + b"tail"
    assert len(record_pieces(pack_payload(2, encoded[4], flag_labels=[2], record_id=5))) == 2
    write_insightface_rec(tmp_path / "train.rec", identities, encoded)
    (tmp_path / "gender.csv").write_text("identity,Male\n0,1\n2,0\n")
    records = InsightFaceRecords(tmp_path / "train.rec", tmp_path / "gender.csv")
    assert len(records) == 6 and records.num_classes == 3
    for index in range(6):
        name, data, identity, attributes = records.example(index)
        assert identity == identities[index] and name.endswith(f"train.rec#{index + 1}")
        assert data == encoded[index]
        np.testing.assert_array_equal(decode_image(data), faces[index])
        assert attributes.tolist() == [{0: 1, 1: -1, 2: 0}[identity]]


def test_wrong_magic_names_file_and_offset(tmp_path):
    write_recordio(tmp_path / "x.rec", {0: b"aaaa", 1: b"bbbbbbbb"})
    (tmp_path / "x.idx").write_text("0\t0\n1\t6\n")  # 6 is inside record 0
    with RecordIOReader(tmp_path / "x.rec") as reader:
        with pytest.raises(ValueError, match=r"x.rec: no record at byte offset 6 .*0xced7230a"):
            reader.read(1)


def test_malformed_index_names_file_and_line(tmp_path):
    (tmp_path / "x.idx").write_text("0\t0\n1\t12\n2 twelve\n")
    with pytest.raises(ValueError, match=r"x.idx:3: expected 'key<TAB>offset'"):
        read_index(tmp_path / "x.idx")
    (tmp_path / "y.idx").write_text("0\t0\n1\n")
    with pytest.raises(ValueError, match=r"y.idx:2: expected"):
        read_index(tmp_path / "y.idx")
    write_recordio(tmp_path / "z.rec", {0: b"aaaa"})
    (tmp_path / "z.idx").write_text("0\t0\n1\t400\n")
    with pytest.raises(ValueError, match=r"z.idx:2: offset 400 is past the end"):
        RecordIOReader(tmp_path / "z.rec")


def test_truncated_record_is_reported(tmp_path):
    write_recordio(tmp_path / "x.rec", {0: b"a" * 40})
    data = (tmp_path / "x.rec").read_bytes()
    (tmp_path / "x.rec").write_bytes(data[:20])
    with RecordIOReader(tmp_path / "x.rec") as reader:
        with pytest.raises(ValueError, match=r"x.rec: the record at byte offset 0 is truncated"):
            reader.read(0)
    assert struct.unpack("<I", data[:4])[0] == 0xCED7230A
