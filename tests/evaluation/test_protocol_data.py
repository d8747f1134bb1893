import numpy as np

from catface_keras.evaluation.heldout import degraded_copies
from catface_keras.evaluation.identification import DISTRACTOR_LABEL
from catface_keras.evaluation.protocol_data import protocols_from_identities, resize_images
from catface_keras.evaluation.protocols import distorted_images


def test_protocols_from_identities_hand_case():
    identities = np.array([4, 4, 4, 9, 9, 7, 7, 7, 7])
    images = np.arange(9, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    distractors = np.full((2, 2, 2, 3), 200, np.uint8)
    data = protocols_from_identities(images, identities, distractors=distractors, num_pairs=5)
    assert data.protocols() == ("verification", "templates", "identification")
    assert len(data.images) == 11 and data.info["num_distractor_images"] == 2
    # Verification: genuine and impostor pairs alternate, so contiguous folds are balanced.
    pairs = data.verification
    np.testing.assert_array_equal(pairs.same, np.arange(10) % 2 == 0)
    np.testing.assert_array_equal(identities[pairs.first] == identities[pairs.second], pairs.same)
    # Templates, people in sorted order: 4 -> images {0, 1} and {2} (templates 0, 1),
    # 7 -> {5, 6} and {7, 8} (2, 3), 9 -> {3} and {4} (4, 5).
    np.testing.assert_array_equal(data.templates.template_ids, [0, 0, 1, 4, 5, 2, 2, 3, 3])
    assert data.templates.pairs.same.sum() == 3 and len(data.templates.pairs.same) == 15
    # Identification: first image of each person plus the distractors in the gallery.
    split = data.identification["tinyface_style"]
    np.testing.assert_array_equal(split.gallery, [0, 3, 5, 9, 10])
    expected = [4, 9, 7, DISTRACTOR_LABEL, DISTRACTOR_LABEL]
    np.testing.assert_array_equal(split.gallery_labels, expected)
    np.testing.assert_array_equal(split.probes, [1, 2, 4, 6, 7, 8])


def test_distorted_images_equal_the_trainers_degraded_copies():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        distorted_images(images, seed=3, batch_size=4), degraded_copies(images, 3, batch_size=4)
    )


def test_resize_images_keeps_matching_sizes():
    images = np.zeros((2, 40, 40, 3), np.uint8)
    assert resize_images(images, 40, progress=False) is images
    assert resize_images(images, 32, progress=False).shape == (2, 32, 32, 3)
