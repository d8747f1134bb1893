import numpy as np

from catface_keras.evaluation.identification import DISTRACTOR_LABEL
from catface_keras.data.face_arrays import EvaluationFaces, FacePairs
from catface_keras.evaluation.protocol_data import (
    evaluation_data,
    protocols_from_identities,
)


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


def test_genuine_pairs_are_shuffled_before_the_folds_are_cut():
    # 40 people with 4 images: 240 genuine pairs, all kept. Unshuffled, the first
    # fold's genuine pairs would come from the first 4 people only.
    identities = np.repeat(np.arange(40), 4)
    images = np.zeros((160, 2, 2, 3), np.uint8)
    pairs = protocols_from_identities(images, identities, num_pairs=240, seed=3).verification
    first_fold = np.array_split(np.arange(len(pairs.same)), 10)[0]
    genuine = first_fold[pairs.same[first_fold]]
    assert len(np.unique(identities[pairs.first[genuine]])) > 10
    again = protocols_from_identities(images, identities, num_pairs=240, seed=3).verification
    np.testing.assert_array_equal(pairs.first, again.first)


def test_evaluation_data_from_a_pair_list_is_verification_only():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    pairs = FacePairs(np.array([0, 2]), np.array([1, 3]), np.array([True, False]), np.array([0, 1]))
    data = evaluation_data(EvaluationFaces(images, pairs=pairs, info={"num_pairs": 2}),
                           source="lfw.bin")
    assert data.protocols() == ("verification",) and data.source == "lfw.bin"
    assert data.verification.first.tolist() == [0, 2] and data.verification.folds.tolist() == [0, 1]
    assert data.info == {"num_pairs": 2}


def test_evaluation_data_from_identities_matches_protocols_from_identities():
    images = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    identities = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    faces = EvaluationFaces(images, identities, info={"skipped_images": 1})
    data = evaluation_data(faces, num_pairs=4, seed=3, source="faces")
    expected = protocols_from_identities(images, identities, num_pairs=4, seed=3, source="faces",
                                         info={"skipped_images": 1})
    assert data.protocols() == expected.protocols() and data.attributes is None
    np.testing.assert_array_equal(data.verification.first, expected.verification.first)
    assert data.info == expected.info and data.info["skipped_images"] == 1
