"""Tests for the procedural synthetic face dataset."""

import numpy as np
import pytest

from catface_keras.data import synthetic
from catface_keras.data.synthetic import ATTRIBUTE_NAMES
from catface_keras.data.synthetic import FaceArrays
from catface_keras.data.synthetic import identity_attributes
from catface_keras.data.synthetic import identity_traits
from catface_keras.data.synthetic import make_synthetic_faces
from catface_keras.data.synthetic import render_face
from catface_keras.data.synthetic import synthetic_splits

# Identities used for the pixel measurements of attributes; paired renders
# of one identity with an attribute forced off and on differ only by it.
PROBE_IDENTITIES = range(500, 516)
PROBE_SIZE = 112


def region(image, top, bottom, left, right):
    """Crop by fractions of the image side, as float32."""
    size = image.shape[0]
    rows = slice(int(top * size), int(bottom * size))
    cols = slice(int(left * size), int(right * size))
    return image[rows, cols].astype(np.float32)


def luminance(pixels):
    return pixels @ np.array([0.299, 0.587, 0.114], np.float32)


def skin_reference(image):
    """Median colour between the eyes, where only skin is drawn."""
    return np.median(region(image, 0.42, 0.47, 0.46, 0.54).reshape(-1, 3), axis=0)


def feature_pixels(pixels, threshold):
    """Pixels far (mean absolute channel difference) from the region median."""
    median = np.median(pixels.reshape(-1, 3), axis=0)
    return int((np.abs(pixels - median).mean(axis=-1) > threshold).sum())


def paired(identity, name, measure, **forced):
    off = render_face(identity, 0, PROBE_SIZE, attributes_override={name: 0, **forced})
    on = render_face(identity, 0, PROBE_SIZE, attributes_override={name: 1, **forced})
    return measure(off, identity, {name: 0, **forced}), measure(on, identity, {name: 1, **forced})


def assert_mostly_less(pairs, minimum_fraction=0.85):
    """`on < off` for most identities; returns the mean values for messages."""
    pairs = np.array(pairs, np.float64)
    fraction = np.mean(pairs[:, 1] < pairs[:, 0])
    assert fraction >= minimum_fraction, (fraction, pairs.tolist())


def test_render_face_shape_dtype_and_determinism():
    image = render_face(3, 2, image_size=64, seed=5)
    assert image.shape == (64, 64, 3)
    assert image.dtype == np.uint8
    assert image.std() > 20  # a drawn face, not a blank canvas
    np.testing.assert_array_equal(image, render_face(3, 2, image_size=64, seed=5))


@pytest.mark.parametrize("image_size", [32, 48, 112])
def test_render_face_any_size(image_size):
    image = render_face(0, 0, image_size=image_size)
    assert image.shape == (image_size, image_size, 3)


def test_generation_is_independent_of_order_and_company():
    together = make_synthetic_faces([7, 2, 9], 3, image_size=48, seed=1)
    alone = make_synthetic_faces([9], 3, image_size=48, seed=1)
    np.testing.assert_array_equal(together.images[6:], alone.images)
    for index in range(3):
        np.testing.assert_array_equal(together.images[3 + index], render_face(2, index, 48, seed=1))


def test_different_seeds_identities_and_indices_differ():
    base = render_face(4, 0, 64, seed=0).astype(np.float32)
    for other in (
        render_face(4, 0, 64, seed=1),
        render_face(5, 0, 64, seed=0),
        render_face(4, 1, 64, seed=0),
    ):
        assert np.abs(base - other).mean() > 5


def test_seed_changes_identity_traits():
    first = identity_traits(11, seed=0)
    second = identity_traits(11, seed=1)
    assert not np.allclose(first.skin, second.skin)
    assert first.eye_half_spacing != second.eye_half_spacing


def test_face_arrays_shapes_dtypes_and_ranges():
    faces = make_synthetic_faces([0, 1, 2, 3], 2, image_size=32)
    assert isinstance(faces, FaceArrays)
    assert faces.images.shape == (8, 32, 32, 3)
    assert faces.images.dtype == np.uint8
    assert faces.identities.shape == (8,)
    assert faces.identities.dtype == np.int32
    assert faces.attributes.shape == (8, 5)
    assert faces.attributes.dtype == np.int32
    assert set(np.unique(faces.attributes)) <= {0, 1}
    assert faces.attribute_names == ATTRIBUTE_NAMES
    assert ATTRIBUTE_NAMES == ("Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes")


def test_relabelling():
    ids = [12, 4, 30]
    relabelled = make_synthetic_faces(ids, 2, image_size=32)
    raw = make_synthetic_faces(ids, 2, image_size=32, relabel=False)
    np.testing.assert_array_equal(relabelled.identities, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(raw.identities, [12, 12, 4, 4, 30, 30])
    np.testing.assert_array_equal(relabelled.images, raw.images)


def test_attributes_constant_within_identity_and_match_identity_attributes():
    ids = [3, 8, 21, 40]
    faces = make_synthetic_faces(ids, 3, image_size=32, seed=2, relabel=False)
    for identity in ids:
        rows = faces.attributes[faces.identities == identity]
        assert (rows == identity_attributes(identity, seed=2)).all()
    expected = identity_attributes(8, seed=2)
    assert expected.shape == (5,) and expected.dtype == np.int32


def test_each_attribute_takes_both_values():
    attributes = np.array([identity_attributes(k, seed=0) for k in range(100)])
    rates = attributes.mean(axis=0)
    assert np.all(rates > 0.25) and np.all(rates < 0.7), rates


def test_override_only_changes_the_attribute():
    actual = dict(zip(ATTRIBUTE_NAMES, identity_attributes(6).tolist()))
    np.testing.assert_array_equal(
        render_face(6, 1, 64, attributes_override=actual), render_face(6, 1, 64)
    )
    flipped = identity_traits(6, attributes_override={"Narrow_Eyes": 1 - actual["Narrow_Eyes"]})
    original = identity_traits(6)
    assert flipped.eye_half_spacing == original.eye_half_spacing
    np.testing.assert_array_equal(flipped.skin, original.skin)
    assert flipped.attributes[4] != original.attributes[4]


def test_synthetic_splits_are_identity_disjoint_and_relabelled():
    train, test = synthetic_splits(4, 3, 2, image_size=32, seed=3, test_images_per_identity=3)
    np.testing.assert_array_equal(train.identities, np.repeat(np.arange(4), 2))
    np.testing.assert_array_equal(test.identities, np.repeat(np.arange(3), 3))
    # Test label t is raw identity 4 + t, never a training identity.
    for row, label in enumerate(test.identities):
        index = row % 3
        np.testing.assert_array_equal(test.images[row], render_face(4 + label, index, 32, seed=3))
        np.testing.assert_array_equal(test.attributes[row], identity_attributes(4 + label, seed=3))
    for row, label in enumerate(train.identities):
        np.testing.assert_array_equal(train.images[row], render_face(label, row % 2, 32, seed=3))


def test_same_identity_images_are_closer_than_other_identities():
    faces = make_synthetic_faces(range(16), 4, image_size=32, seed=0)
    # The central face area, blurred by averaging 4x4 blocks against pose.
    centre = faces.images[:, 6:26, 6:26].astype(np.float32)
    blocks = centre.reshape(len(centre), 5, 4, 5, 4, 3).mean(axis=(2, 4)).reshape(len(centre), -1)
    distances = np.abs(blocks[:, None] - blocks[None]).mean(axis=-1)
    same = faces.identities[:, None] == faces.identities[None]
    off_diagonal = ~np.eye(len(blocks), dtype=bool)
    within = distances[same & off_diagonal].mean()
    between = distances[~same].mean()
    assert within < 0.8 * between, (within, between)


def test_male_has_darker_lower_face():
    def lower_face_darkness(image, identity, attributes):
        lower = luminance(region(image, 0.74, 0.88, 0.38, 0.62)).mean()
        return lower / luminance(skin_reference(image))

    assert_mostly_less([paired(k, "Male", lower_face_darkness) for k in PROBE_IDENTITIES])


def test_bald_has_no_hair_on_top_of_the_head():
    def hair_fraction(image, identity, attributes):
        traits = identity_traits(identity, attributes_override=attributes)
        top = region(image, 0.03, 0.2, 0.35, 0.65)
        to_hair = np.linalg.norm(top - traits.hair, axis=-1)
        to_skin = np.linalg.norm(top - skin_reference(image), axis=-1)
        return -np.mean(to_skin < to_hair)  # negated: skin-like is higher when bald

    assert_mostly_less([paired(k, "Bald", hair_fraction) for k in PROBE_IDENTITIES])


def test_big_nose_covers_more_pixels():
    def nose_pixels(image, identity, attributes):
        # Shading and nostrils: pixels clearly darker than the skin.
        nose = region(image, 0.55, 0.72, 0.36, 0.64)
        return -np.sum(luminance(nose) < 0.8 * luminance(skin_reference(image)))

    # Without a beard the nose is the only non-skin shape in the region.
    pairs = [paired(k, "Big_Nose", nose_pixels, Male=0) for k in PROBE_IDENTITIES]
    assert_mostly_less(pairs)


def test_chubby_has_a_wider_lower_face():
    def skin_width(image, identity, attributes):
        band = region(image, 0.64, 0.86, 0.0, 1.0)
        close = np.linalg.norm(band - skin_reference(image), axis=-1) < 30
        return -close.sum()

    # Without beard and hair, the face edge is the skin edge.
    pairs = [paired(k, "Chubby", skin_width, Male=0, Bald=1) for k in PROBE_IDENTITIES]
    assert_mostly_less(pairs)


def test_narrow_eyes_show_less_eye():
    def eye_pixels(image, identity, attributes):
        return feature_pixels(region(image, 0.36, 0.52, 0.18, 0.82), threshold=45)

    assert_mostly_less([paired(k, "Narrow_Eyes", eye_pixels) for k in PROBE_IDENTITIES], 0.95)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: render_face(0, 0, image_size=7), "Received: image_size=7"),
        (lambda: render_face(0, 0, image_size=64.0), "Received: image_size=64.0"),
        (lambda: render_face(-1, 0), "Received: identity=-1"),
        (lambda: render_face(0, -2), "Received: index=-2"),
        (lambda: render_face(0, 0, seed=-3), "Received: seed=-3"),
        (lambda: render_face(0, 0, attributes_override={"Smiling": 1}), "Received: attributes_override="),
        (lambda: render_face(0, 0, attributes_override={"Bald": 2}), "Received: attributes_override="),
        (lambda: identity_attributes(True), "Received: identity=True"),
        (lambda: make_synthetic_faces([], 2), "Received: identity_ids=[]"),
        (lambda: make_synthetic_faces([1, 1], 2), "Received: identity_ids=[1, 1]"),
        (lambda: make_synthetic_faces([1.5], 2), "Received: identity_ids=[1.5]"),
        (lambda: make_synthetic_faces([1], 0), "Received: images_per_identity=0"),
        (lambda: make_synthetic_faces([1], 2, relabel=1), "Received: relabel=1"),
        (lambda: synthetic_splits(0, 2, 2), "Received: num_train_identities=0"),
        (lambda: synthetic_splits(2, 0, 2), "Received: num_test_identities=0"),
        (lambda: synthetic_splits(2, 2, 2, image_size=16), "Received: image_size=16"),
        (lambda: synthetic_splits(2, 2, 2, test_images_per_identity=0), "Received: test_images_per_identity=0"),
    ],
)
def test_argument_errors(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_module_says_the_data_is_synthetic():
    assert "SYNTHETIC" in synthetic.__doc__
