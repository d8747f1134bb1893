"""Face detection with five landmarks: MTCNN (the `mtcnn` package, MIT).

`mtcnn` ships its three networks' weights in its wheel and runs on TensorFlow;
nothing is downloaded. It is imported when a `MtcnnDetector` is made, so the
rest of the package (and `catface --help`) does not need it.

A detector is anything with `detect(image) -> list[DetectedFace]`; tests and
other detectors plug in through that method alone.
"""

import dataclasses
import functools

import numpy as np

MTCNN_REQUIREMENT = "mtcnn==1.0.0"
# MTCNN's first network looks at 12x12 windows; a smaller image has no face to find.
_MTCNN_MIN_SIDE = 12
# The lowest face score `catface align` keeps by default, from
# benchmarks/detection_scores.py (MTCNN 1.0.0, 1500 CelebA photos, 1500 non-faces):
# 99.3 % of true faces score >= 0.9 (1st percentile 0.93, median 0.9986); textures,
# noise and background crops gave no detection at all, faces cut into shuffled tiles
# gave 263 false ones from 0.80 up (median 0.96). 0.9 drops the doubtful quarter of
# those (the 0.85 non-face of issue 24 among them) for 0.7 % of true faces, listed
# in the report; a higher cut costs true faces fast (0.95: 2.3 %, 0.99: 16 %).
DEFAULT_MIN_CONFIDENCE = 0.9


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


def check_detector_installed():
    """The `mtcnn.MTCNN` class; ImportError saying how to install it when it is missing."""
    try:
        from mtcnn import MTCNN
    except ImportError as error:
        raise ImportError(
            f"Face detection needs the `mtcnn` package: pip install {MTCNN_REQUIREMENT} "
            f"(it is in catface-keras's requirements). Import failed with: {error}"
        ) from error
    return MTCNN


class MtcnnDetector:
    """MTCNN on CPU: RGB uint8 image -> faces with five landmarks.

    Args:
        min_face_size: the smallest face side looked for, in pixels (MTCNN's 20).
        min_confidence: faces scored below this are dropped (MTCNN's last
            stage already keeps only those above 0.8).
        device: TensorFlow device for the networks.
    """

    def __init__(self, min_face_size=20, min_confidence=0.0, device="CPU:0"):
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) or (
            not 0.0 <= min_confidence <= 1.0
        ):
            raise ValueError(
                f"`min_confidence` must be a number in [0, 1]. "
                f"Received: min_confidence={min_confidence!r}"
            )
        if not isinstance(min_face_size, int) or min_face_size < _MTCNN_MIN_SIDE:
            raise ValueError(
                f"`min_face_size` must be an int >= {_MTCNN_MIN_SIDE}. "
                f"Received: min_face_size={min_face_size!r}"
            )
        MTCNN = check_detector_installed()
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
        rows = np.asarray(self._run_stages(image), np.float64).reshape(-1, 16)
        return [
            DetectedFace(
                box=row[1:5].copy(),
                confidence=float(row[5]),
                landmarks=np.stack([row[6:11], row[11:16]], axis=1),
            )
            for row in rows
            if row[5] >= self.min_confidence
        ]


    def _run_stages(self, image):
        """`MTCNN.detect_faces(image, output_type="numpy", box_format="xyxy")`, without its
        empty stages.

        mtcnn 1.0.0 feeds the next network even when a stage kept no candidate; the
        empty batch (`[0, 24, 24, 3]`, `[0, 48, 48, 3]`) fails inside TensorFlow, which
        logs "Local rendezvous is aborting ... Incompatible shapes" to stderr before
        mtcnn catches the error as "no face". Stopping at the first empty stage gives
        the same (empty) answer without the alarming log, and leaves any other
        TensorFlow error to propagate.
        """
        import tensorflow as tf
        from mtcnn.utils.bboxes import fix_bboxes_offsets, limit_bboxes
        from mtcnn.utils.images import standarize_batch

        with tf.device(self._mtcnn.device):
            images, shapes, padding = standarize_batch([image], normalize=True)
            candidates = None
            try:
                for stage in self._mtcnn.stages:
                    candidates = stage(bboxes_batch=candidates, images_normalized=images,
                                       images_oshapes=shapes, min_face_size=self.min_face_size)
                    if len(candidates) == 0:
                        return np.empty((0, 16))
            except tf.errors.InvalidArgumentError:
                # What `detect_faces` reads as "no face" too (kept for identical answers).
                return np.empty((0, 16))
            candidates = fix_bboxes_offsets(candidates, padding)
            return limit_bboxes(candidates, images_shapes=shapes, limit_landmarks=False)


def default_detector(min_face_size=20, min_confidence=0.0):
    """The detector the `catface align|embed|verify` commands use (one place to swap it)."""
    return MtcnnDetector(min_face_size=min_face_size, min_confidence=min_confidence)


def detector_factory(min_face_size=20, min_confidence=0.0):
    """A picklable zero-argument callable that makes `default_detector(...)`.

    `catface align --workers N` sends it to each worker process, which builds its own.
    """
    return functools.partial(MtcnnDetector, min_face_size=min_face_size,
                             min_confidence=min_confidence)
