import json

import pytest
import tensorflow as tf
from data.face_writers import face_image, write_image

from catface_keras.data.decoding import SkippedImages, decode_elements
from catface_keras.data.image_folder import read_image_folder
from catface_keras.data.tfrecord import (
    read_tfrecord_dataset,
    tfrecord_elements,
    write_tfrecord_shards,
)

COUNT = 12


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "faces"
    for index in range(COUNT):
        write_image(root / f"id{index % 3}" / f"{index:02d}.png", face_image(index, 20, 20))
    csv = tmp_path / "attributes.csv"
    csv.write_text("path,Male\n" + "".join(
        f"id{i % 3}/{i:02d}.png,{(-1, 0, 1)[i % 3]}\n" for i in range(COUNT)))
    return read_image_folder(root, csv, ["Male"])


def by_name(dataset_elements):
    """`{name: (image, identity, attributes)}` from a dataset of encoded elements."""
    decoded = {}
    for encoded, name, identity, attributes in dataset_elements.as_numpy_iterator():
        decoded[name.decode()] = (encoded, int(identity), attributes.tolist())
    return decoded


def test_round_trip_gives_back_identical_images_and_labels(folder, tmp_path):
    metadata = write_tfrecord_shards(folder, tmp_path / "shards", num_shards=4)
    assert metadata["num_examples"] == COUNT and metadata["num_classes"] == 3
    assert metadata["attribute_names"] == ["Male"] and len(metadata["shards"]) == 4
    assert json.loads((tmp_path / "shards" / "dataset.json").read_text()) == metadata
    read_back = sorted(
        (image.tobytes(), int(identity), tuple(attributes))
        for image, identity, attributes
        in read_tfrecord_dataset(tmp_path / "shards", 20).as_numpy_iterator()
    )
    expected = sorted(
        (face_image(i, 20, 20).tobytes(), i % 3, ((-1, 0, 1)[i % 3],)) for i in range(COUNT)
    )
    assert read_back == expected


def test_resized_images_are_stored_as_png_at_the_new_size(folder, tmp_path):
    write_tfrecord_shards(folder, tmp_path / "shards", num_shards=2, image_size=10)
    (image, _, _), *rest = read_tfrecord_dataset(tmp_path / "shards").as_numpy_iterator()
    assert image.shape == (10, 10, 3) and len(rest) == COUNT - 1


def test_worker_shares_are_disjoint_and_complete(folder, tmp_path):
    write_tfrecord_shards(folder, tmp_path / "shards", num_shards=5)
    shares = [set(by_name(tfrecord_elements(tmp_path / "shards", w, 2))) for w in range(2)]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(folder.paths)
    with pytest.raises(ValueError, match=r"5 shard\(s\), fewer than the 6 workers"):
        tfrecord_elements(tmp_path / "shards", 0, 6)


def test_epoch_order_is_a_function_of_the_seed(folder, tmp_path):
    write_tfrecord_shards(folder, tmp_path / "shards", num_shards=3)

    def order(seed):
        elements = tfrecord_elements(tmp_path / "shards", epoch_seed=tf.constant(seed, tf.int64),
                                     shuffle_buffer=4)
        return [name for _, name, _, _ in elements.as_numpy_iterator()]

    assert order([1, 2]) == order([1, 2])
    assert sorted(order([1, 2])) == sorted(order([1, 3])) and order([1, 2]) != order([1, 3])


def test_existing_shards_are_not_overwritten_without_overwrite(folder, tmp_path):
    write_tfrecord_shards(folder, tmp_path / "shards", num_shards=2)
    stamp = (tmp_path / "shards" / "dataset.json").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_tfrecord_shards(folder, tmp_path / "shards", num_shards=3)
    assert (tmp_path / "shards" / "dataset.json").stat().st_mtime_ns == stamp
    metadata = write_tfrecord_shards(folder, tmp_path / "shards", num_shards=3, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.tfrecord")) == [
        shard["file"] for shard in metadata["shards"]]


def test_undecodable_images_are_left_out_of_the_shards_and_counted(folder, tmp_path):
    with open(folder.paths[5], "wb") as handle:
        handle.write(b"\x89PNG broken")
    skipped = SkippedImages()
    metadata = write_tfrecord_shards(folder, tmp_path / "shards", num_shards=2, skipped=skipped)
    assert metadata["num_examples"] == COUNT - 1 and metadata["skipped"]["count"] == 1
    assert folder.paths[5] in metadata["skipped"]["examples"][0]
    decoded = decode_elements(tfrecord_elements(tmp_path / "shards"), 20, SkippedImages())
    assert len(list(decoded)) == COUNT - 1
