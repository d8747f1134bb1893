"""Photos for the alignment tests: synthetic faces on a canvas, a stub detector."""

import cv2
import numpy as np

from catface_keras.alignment.detection import DetectedFace
from catface_keras.data.synthetic import render_face


def face_photo(identity, index=0, face_size=160, canvas=(320, 280), offset=(60, 50)):
    """A synthetic face (`render_face`) pasted on a grey canvas: `(H, W, 3)` uint8 RGB.

    MTCNN finds identities 0 and 2 with confidence >= 0.99 (its last stage keeps > 0.8);
    the tests that run it use those.
    """
    photo = np.full((*canvas, 3), 180, np.uint8)
    top, left = offset
    photo[top : top + face_size, left : left + face_size] = render_face(
        identity, index, image_size=face_size
    )
    return photo


def write_photo(path, image_rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    return path


class StubDetector:
    """Finds, in every image that is not uniform, the faces whose landmarks it is given.

    `faces`: a list of `(landmarks (5, 2), box side)` or `(landmarks, box side,
    confidence)` (default 0.99); landmarks in image pixels. `calls` counts the
    images it was asked about. Picklable, so `functools.partial(StubDetector, faces)`
    can make one in each `align_folder` worker.
    """

    def __init__(self, faces):
        self.faces = faces
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        if image.min() == image.max():
            return []
        found = []
        for landmarks, side, *confidence in self.faces:
            centre = np.mean(landmarks, axis=0)
            box = np.concatenate([centre - side / 2, centre + side / 2])
            found.append(DetectedFace(box=box, confidence=confidence[0] if confidence else 0.99,
                                      landmarks=np.asarray(landmarks, np.float64)))
        return found


class CrashesOnDarkCorner(StubDetector):
    """A `StubDetector` that raises on an image whose top-left pixel is black."""

    def detect(self, image):
        if not image[0, 0].any():
            raise RuntimeError("detector crashed")
        return super().detect(image)
