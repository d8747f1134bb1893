import numpy as np
import pytest
import tensorflow as tf

from catface_keras.data.pairs import paired_dataset


def add_seeded_noise(images, seed):
    return images + tf.random.stateless_uniform(tf.shape(images), seed, 0, 1)


def arrays(count=10, size=4):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (count, size, size, 3), dtype=np.uint8)
    identities = np.arange(count) % 3
    attributes = rng.integers(-1, 2, (count, 5))
    return images, identities, attributes


def collect(dataset):
    return [
        (x["hq"].numpy(), x["lq"].numpy(), y["identity"].numpy(), y["attributes"].numpy())
        for x, y in dataset
    ]


def test_structure_and_labels_follow_images():
    images, identities, attributes = arrays()
    batches = collect(paired_dataset(images, identities, attributes, 4, add_seeded_noise))
    assert len(batches) == 2  # 10 images, batch 4, remainder dropped
    for hq, lq, identity, attribute in batches:
        assert hq.shape == lq.shape == (4, 4, 4, 3) and hq.dtype == np.float32
        for row in range(4):
            index = int(np.flatnonzero((images == hq[row].astype(np.uint8)).all(axis=(1, 2, 3)))[0])
            assert identity[row] == identities[index]
            np.testing.assert_array_equal(attribute[row], attributes[index])
        assert 0 < np.abs(lq - hq).max() <= 1


def test_each_epoch_is_a_permutation_and_epochs_differ():
    images, identities, attributes = arrays(count=8)
    dataset = paired_dataset(images, identities, attributes, 8, add_seeded_noise, num_epochs=2)
    first, second = collect(dataset)
    for hq, *_ in (first, second):
        assert sorted(map(bytes, hq.astype(np.uint8))) == sorted(map(bytes, images))
    assert not np.array_equal(first[0], second[0])


def test_same_seed_same_stream_and_resume_matches():
    images, identities, attributes = arrays()
    full = collect(paired_dataset(images, identities, attributes, 2, add_seeded_noise, seed=5, num_epochs=3))
    again = collect(paired_dataset(images, identities, attributes, 2, add_seeded_noise, seed=5, num_epochs=3))
    resumed = collect(
        paired_dataset(images, identities, attributes, 2, add_seeded_noise, seed=5, start_epoch=1, num_epochs=2)
    )
    other = collect(paired_dataset(images, identities, attributes, 2, add_seeded_noise, seed=6, num_epochs=3))
    for a, b in zip(full, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # A run resumed at epoch 1 sees exactly the batches of epochs 1-2.
    steps = len(full) // 3
    for a, b in zip(full[steps:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(full, other))


def test_rejects_mismatched_inputs():
    images, identities, attributes = arrays()
    with pytest.raises(ValueError, match="one entry per image"):
        paired_dataset(images, identities[:5], attributes, 2, add_seeded_noise)
    with pytest.raises(ValueError, match="batch_size=20"):
        paired_dataset(images, identities, attributes, 20, add_seeded_noise)
