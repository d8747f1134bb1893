import numpy as np
import pytest
import tensorflow as tf
from data.face_writers import encode, face_image, write_celeba, write_image, write_insightface_rec

from catface_keras.config import DataConfig
from catface_keras.data.image_folder import read_image_folder
from catface_keras.data.sources import load_training_data
from catface_keras.data.tfrecord import write_tfrecord_shards

NAMES = ("Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes")


def add_seeded_noise(images, seed):
    return images + tf.random.stateless_uniform(tf.shape(images), seed, 0, 1)


def collect(dataset):
    return [
        (x["hq"].numpy(), x["lq"].numpy(), y["identity"].numpy(), y["attributes"].numpy())
        for x, y in dataset
    ]


def image_folder(root, count=10, corrupt=()):
    for index in range(count):
        path = root / f"id{index % 3}" / f"{index:02d}.png"
        if index in corrupt:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x89PNG not really")
        else:
            write_image(path, face_image(index, 16, 16))
    return root


def config(source, path, **changes):
    return DataConfig(source=source, path=str(path), image_size=16, **changes)


def test_stream_epochs_are_permutations_and_a_resumed_run_sees_the_same_batches(tmp_path):
    train, _ = load_training_data(config("image_folder", image_folder(tmp_path / "f")), NAMES)
    assert train.num_examples == 10 and train.num_classes == 3

    def stream(**kwargs):
        return collect(train.paired_dataset(5, add_seeded_noise, seed=4, **kwargs))

    full = stream(num_epochs=3)
    assert len(full) == 6  # 2 batches per epoch
    for epoch in range(3):
        hq = np.concatenate([full[2 * epoch][0], full[2 * epoch + 1][0]]).astype(np.uint8)
        assert sorted(map(bytes, hq)) == sorted(face_image(i, 16, 16).tobytes() for i in range(10))
        identity = np.concatenate([full[2 * epoch][2], full[2 * epoch + 1][2]])
        assert sorted(identity.tolist()) == sorted(i % 3 for i in range(10))
    assert not np.array_equal(full[0][0], full[2][0])  # reshuffled every epoch
    resumed = stream(start_epoch=1, num_epochs=2)
    for a, b in zip(full[2:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # Labels follow images.
    for hq, _, identity, attributes in full:
        for image, label in zip(hq.astype(np.uint8), identity):
            index = next(i for i in range(10) if np.array_equal(image, face_image(i, 16, 16)))
            assert label == index % 3
        assert (attributes == -1).all()


def test_skipped_images_do_not_change_the_steps_of_an_epoch(tmp_path):
    root = image_folder(tmp_path / "f", count=12, corrupt=(2, 7))
    train, _ = load_training_data(config("image_folder", root), NAMES)
    batches = collect(train.paired_dataset(4, add_seeded_noise, num_epochs=2))
    assert len(batches) == 6  # 12 // 4 per epoch, topped up from the epoch's start
    assert train.skipped.count == 2
    assert all(batch[0].shape == (4, 16, 16, 3) for batch in batches)


def test_celeba_source_holds_out_the_test_partition(tmp_path):
    identities = [1, 1, 2, 2, 3, 3, 4, 4]
    write_celeba(tmp_path, identities, [0, 0, 0, 0, 1, 1, 2, 2], [{"Male"}] * 8)
    train, heldout = load_training_data(config("celeba", tmp_path), NAMES)
    assert train.num_examples == 4 and train.num_classes == 2
    assert heldout.images.shape == (2, 16, 16, 3) and heldout.identities.tolist() == [0, 0]
    assert heldout.attribute_names == NAMES and heldout.attributes[:, 0].tolist() == [1, 1]


def test_recordio_has_no_heldout_faces_unless_a_folder_is_given(tmp_path):
    images = [encode(face_image(i, 16, 16), ".jpg") for i in range(4)]
    write_insightface_rec(tmp_path / "train.rec", [0, 0, 1, 1], images)
    train, heldout = load_training_data(config("recordio", tmp_path / "train.rec"), ["Male"])
    assert heldout is None and train.num_examples == 4 and train.num_classes == 2
    (hq, _, identity, attributes), = collect(train.paired_dataset(4, add_seeded_noise))
    assert sorted(identity.tolist()) == [0, 0, 1, 1] and attributes.shape == (4, 1)
    folder = image_folder(tmp_path / "heldout", count=6)
    _, heldout = load_training_data(
        config("recordio", tmp_path / "train.rec", heldout_path=str(folder)), ["Male"]
    )
    assert heldout.images.shape == (6, 16, 16, 3) and (heldout.attributes == -1).all()


def test_tfrecord_source_finds_its_heldout_shards(tmp_path):
    files = read_image_folder(image_folder(tmp_path / "f", count=9), None, ["Male"])
    write_tfrecord_shards(files, tmp_path / "shards", num_shards=3)
    write_tfrecord_shards(files, tmp_path / "shards" / "heldout", num_shards=1)
    data = config("tfrecord", tmp_path / "shards", shuffle_buffer=4, max_heldout_images=6)
    train, heldout = load_training_data(data, ["Male"])
    assert train.num_examples == 9 and train.num_classes == 3 and len(heldout.images) == 6
    first = collect(train.paired_dataset(3, add_seeded_noise, seed=1, num_epochs=2))
    again = collect(train.paired_dataset(3, add_seeded_noise, seed=1, start_epoch=1))
    for a, b in zip(first[3:], again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=r"holds attributes \['Male'\].*model.attribute_names"):
        load_training_data(data, NAMES)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"`data.path` must name the .*Received: data.path=None"):
        load_training_data(DataConfig(source="celeba"), NAMES)
    with pytest.raises(ValueError, match=r"`data.path` does not exist"):
        load_training_data(config("image_folder", tmp_path / "nowhere"), NAMES)


def test_stream_splits_across_replicas(tmp_path, two_cpu_strategy):
    train, _ = load_training_data(config("image_folder", image_folder(tmp_path / "f")), NAMES)
    dataset = train.paired_dataset(4, add_seeded_noise)
    inputs, targets = next(iter(two_cpu_strategy.experimental_distribute_dataset(dataset)))
    halves = two_cpu_strategy.experimental_local_results(inputs["hq"])
    assert [tuple(half.shape) for half in halves] == [(2, 16, 16, 3), (2, 16, 16, 3)]
    identities = two_cpu_strategy.experimental_local_results(targets["identity"])
    assert sum(len(half) for half in identities) == 4


def test_synthetic_faces_give_the_attributes_the_model_predicts():
    # The drawn faces carry the paper's five; a model of fewer (catface ablate's attribute
    # table) gets those columns, in its own order.
    from catface_keras.data.synthetic import synthetic_splits

    data = DataConfig(num_train_identities=4, num_test_identities=3, images_per_identity=2,
                      test_images_per_identity=2, image_size=32)
    train, test = load_training_data(data, ["Chubby", "Male"])
    _, full_test = synthetic_splits(4, 3, 2, image_size=32, test_images_per_identity=2)
    assert test.attribute_names == ("Chubby", "Male")
    np.testing.assert_array_equal(test.attributes, full_test.attributes[:, [3, 0]])
    assert train.faces.attributes.shape[1] == 2
    with pytest.raises(ValueError, match=r"not \['Blond'\]"):
        full_test.select_attributes(["Male", "Blond"])
