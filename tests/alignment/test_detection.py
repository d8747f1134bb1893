"""MTCNN through `MtcnnDetector`: no face in a blank image, landmark order, largest face."""

import numpy as np
import pytest
from alignment.photo_faces import face_photo

from catface_keras.alignment.detection import DetectedFace, MtcnnDetector, select_faces
from catface_keras.alignment.photos import align_photo
from catface_keras.landmark_alignment import ARCFACE_TEMPLATE
from catface_keras.data.synthetic import render_face


def test_blank_image_has_no_face(mtcnn_detector):
    assert mtcnn_detector.detect(np.full((240, 200, 3), 128, np.uint8)) == []
    assert align_photo(np.zeros((240, 200, 3), np.uint8), mtcnn_detector) == []


def test_image_smaller_than_the_smallest_face_has_none(mtcnn_detector):
    assert mtcnn_detector.detect(np.full((10, 300, 3), 90, np.uint8)) == []


def test_synthetic_face_is_found_with_landmarks_in_order(mtcnn_detector):
    photo = face_photo(identity=2)  # the face fills rows 60..220, columns 50..210
    (face,) = mtcnn_detector.detect(photo)

    x1, y1, x2, y2 = face.box
    assert 40 <= x1 < x2 <= 230 and 40 <= y1 < y2 <= 240
    assert 0.8 <= face.confidence <= 1.0
    eye_left, eye_right, nose, mouth_left, mouth_right = face.landmarks
    assert np.all((face.landmarks >= face.box[:2]) & (face.landmarks <= face.box[2:]))
    # Image-left before image-right, eyes above the nose above the mouth.
    assert eye_left[0] < eye_right[0] and mouth_left[0] < mouth_right[0]
    assert max(eye_left[1], eye_right[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_a_shifted_face_gives_shifted_landmarks(mtcnn_detector):
    (first,) = mtcnn_detector.detect(face_photo(2, offset=(40, 30)))
    (second,) = mtcnn_detector.detect(face_photo(2, offset=(80, 110)))
    # 80 px right, 40 px down. MTCNN's image pyramid is not shift-invariant: points
    # move by up to ~2 px more here (up to ~8 on faces it is less sure of).
    shift = second.landmarks - first.landmarks
    np.testing.assert_allclose(shift.mean(axis=0), [80.0, 40.0], atol=3.0)
    np.testing.assert_allclose(shift, [[80.0, 40.0]] * 5, atol=5.0)


def test_aligned_detected_face_has_eyes_level_at_the_template_height(mtcnn_detector):
    (aligned,) = align_photo(face_photo(0), mtcnn_detector)
    assert aligned.image.shape == (112, 112, 3)
    # Dark pupils/lashes lie on the eye row of the template, not far above or below.
    grey = aligned.image.mean(axis=2)
    eye_row = int(round(ARCFACE_TEMPLATE[:2, 1].mean()))
    band = grey[eye_row - 6 : eye_row + 7, 30:82]
    assert band.min() < grey[eye_row - 20 : eye_row - 12, 30:82].mean() - 40


def test_largest_face_first_and_all_faces(mtcnn_detector):
    photo = np.full((360, 520, 3), 180, np.uint8)
    photo[40:240, 20:220] = render_face(0, 0, 200)
    photo[100:220, 320:440] = render_face(2, 0, 120)
    faces = mtcnn_detector.detect(photo)
    assert len(faces) == 2
    (largest,) = select_faces(faces)
    assert largest.box[0] < 220  # the 200-px face, on the left
    both = align_photo(photo, mtcnn_detector, all_faces=True)
    assert [face.face.box[0] < 220 for face in both] == [True, False]


def test_select_faces_orders_by_box_area():
    def face(side):
        return DetectedFace(np.array([0.0, 0.0, side, side]), 0.9, np.zeros((5, 2)))

    small, large, middle = face(10), face(50), face(30)
    assert select_faces([small, large, middle]) == [large]
    assert select_faces([small, large, middle], all_faces=True) == [large, middle, small]
    assert select_faces([]) == []


@pytest.mark.parametrize("image", [np.zeros((50, 50), np.uint8), np.zeros((50, 50, 3), np.float32)])
def test_detector_refuses_other_than_rgb_uint8(mtcnn_detector, image):
    with pytest.raises(ValueError, match="must be \\(H, W, 3\\) uint8 RGB"):
        mtcnn_detector.detect(image)


def test_min_face_size_is_checked():
    with pytest.raises(ValueError, match="min_face_size=5"):
        MtcnnDetector(min_face_size=5)


def test_no_candidate_stage_logs_nothing(mtcnn_detector, capfd):
    # Blank: PNet keeps nothing; noise: RNet keeps nothing. mtcnn 1.0.0 ran the next
    # network on an empty batch and TensorFlow logged "Local rendezvous is aborting ...
    # Incompatible shapes: [0,48,48,3]" to stderr.
    noise = np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    capfd.readouterr()
    assert mtcnn_detector.detect(np.full((200, 200, 3), 128, np.uint8)) == []
    assert mtcnn_detector.detect(noise) == []
    assert "rendezvous" not in capfd.readouterr().err


def test_detections_match_mtcnn_detect_faces(mtcnn_detector):
    photo = np.full((360, 520, 3), 180, np.uint8)
    photo[40:240, 20:220] = render_face(0, 0, 200)
    photo[100:220, 320:440] = render_face(2, 0, 120)
    expected = mtcnn_detector._mtcnn.detect_faces(photo, output_type="numpy", box_format="xyxy")
    found = mtcnn_detector.detect(photo)
    assert len(found) == len(expected) == 2
    for face, row in zip(found, expected):
        np.testing.assert_array_equal(face.box, row[1:5])
        assert face.confidence == row[5]
        np.testing.assert_array_equal(face.landmarks, np.stack([row[6:11], row[11:16]], axis=1))


def test_min_confidence_is_checked():
    with pytest.raises(ValueError, match="min_confidence=1.5"):
        MtcnnDetector(min_confidence=1.5)
