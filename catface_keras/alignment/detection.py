"""Face detection with five landmarks: MTCNN (the `mtcnn` package, MIT).

`mtcnn` ships its three networks' weights in its wheel and runs on TensorFlow;
nothing is downloaded. It is imported when a `MtcnnDetector` is made, so the
rest of the package (and `catface --help`) does not need it.

A detector is anything with `detect(image) -> list[DetectedFace]`; tests and
other detectors plug in through that method alone.
"""

import dataclasses

import numpy as np

MTCNN_REQUIREMENT = "mtcnn==1.0.0"
# MTCNN's first network looks at 12x12 windows; a smaller image has no face to find.
_MTCNN_MIN_SIDE = 12


@dataclasses.dataclass(frozen=True)
class DetectedFace:
    """One detected face.

    Attributes:
        box: `(4,)` float64 `(x1, y1, x2, y2)` in pixels.
        confidence: the detector's face score in [0, 1] (for MTCNN, the last
            network's, the one that also places the landmarks).
        landmarks: `(5, 2)` float64 (x, y): left eye, right eye, nose, left
            and right mouth corner (left: the image's left).
    """

    box: np.ndarray
    confidence: float
    landmarks: np.ndarray

    @property
    def area(self):
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


def select_faces(faces, all_faces=False):
    """The largest face (by box area) as a one-element list, or every face, largest first."""
    ordered = sorted(faces, key=lambda face: face.area, reverse=True)
    return ordered if all_faces else ordered[:1]


class MtcnnDetector:
    """MTCNN on CPU: RGB uint8 image -> faces with five landmarks.

    Args:
        min_face_size: the smallest face side looked for, in pixels (MTCNN's 20).
        min_confidence: faces scored below this are dropped (MTCNN's last
            stage already keeps only those above 0.8).
        device: TensorFlow device for the networks.
    """

    def __init__(self, min_face_size=20, min_confidence=0.0, device="CPU:0"):
        if not isinstance(min_face_size, int) or min_face_size < _MTCNN_MIN_SIDE:
            raise ValueError(
                f"`min_face_size` must be an int >= {_MTCNN_MIN_SIDE}. "
                f"Received: min_face_size={min_face_size!r}"
            )
        try:
            from mtcnn import MTCNN
        except ImportError as error:
            raise ImportError(
                f"Face detection needs the `mtcnn` package: pip install {MTCNN_REQUIREMENT} "
                f"(it is in catface-keras's requirements). Import failed with: {error}"
            ) from error
        self.min_face_size = min_face_size
        self.min_confidence = float(min_confidence)
        self._mtcnn = MTCNN(device=device)

    def detect(self, image):
        """Faces in `image` (`(H, W, 3)` uint8 RGB), in the detector's order."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                "`image` must be (H, W, 3) uint8 RGB. "
                f"Received: image.shape={image.shape}, dtype={image.dtype}"
            )
        if min(image.shape[:2]) < max(_MTCNN_MIN_SIDE, self.min_face_size):
            return []
        # Rows: image index, x1, y1, x2, y2, score, five x's, five y's.
        rows = self._mtcnn.detect_faces(
            image, output_type="numpy", box_format="xyxy", min_face_size=self.min_face_size
        )
        rows = np.asarray(rows, np.float64).reshape(-1, 16)
        return [
            DetectedFace(
                box=row[1:5].copy(),
                confidence=float(row[5]),
                landmarks=np.stack([row[6:11], row[11:16]], axis=1),
            )
            for row in rows
            if row[5] >= self.min_confidence
        ]


def default_detector(min_face_size=20):
    """The detector the `catface align|embed|verify` commands use (one place to swap it)."""
    return MtcnnDetector(min_face_size=min_face_size)
