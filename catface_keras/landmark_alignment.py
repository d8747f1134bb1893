"""The ArcFace 112x112 five-point template and the similarity warp onto it.

A face is aligned as insightface aligns its training data: the five landmarks
(left eye, right eye, nose tip, left and right mouth corner; "left" is the
image's left) are mapped onto `ARCFACE_TEMPLATE` by the similarity transform
(rotation, uniform scale, translation) that fits them best in least squares
(Umeyama, 1991), and the image is warped with it.
"""

import cv2
import numpy as np

ALIGNED_SIZE = 112

# (x, y) in pixels of a 112x112 crop, in landmark order.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # left eye
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float64,
)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _points(value, name):
    points = np.asarray(value, np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(
            f"`{name}` must be (N, 2) points with N >= 2. Received: {name}.shape={points.shape}"
        )
    if not np.all(np.isfinite(points)):
        raise ValueError(f"`{name}` must be finite. Received: {name}={points.tolist()}")
    return points


def estimate_similarity(source, target):
    """The similarity transform that maps `source` onto `target` in least squares.

    Minimises `sum_i |s R source_i + t - target_i|^2` over rotations `R`
    (no reflection), scales `s > 0` and translations `t` (Umeyama's closed form).

    Args:
        source: `(N, 2)` points (x, y), e.g. detected landmarks.
        target: `(N, 2)` points, e.g. `ARCFACE_TEMPLATE`.

    Returns:
        `(2, 3)` float64 matrix `[s R | t]` (the form `cv2.warpAffine` takes).

    Raises:
        ValueError: shapes differ, or the source points all coincide.
    """
    source = _points(source, "source")
    target = _points(target, "target")
    if source.shape != target.shape:
        raise ValueError(
            "`source` and `target` must have the same shape. "
            f"Received: source.shape={source.shape}, target.shape={target.shape}"
        )
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    source_variance = np.mean(np.sum(source_centred**2, axis=1))
    if source_variance < 1e-12:
        raise ValueError(
            "`source` points all coincide; no transform maps them onto the template. "
            f"Received: source={source.tolist()}"
        )
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    # A reflection would fit better when det < 0; flip the weakest axis instead.
    signs = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = float(singular @ signs) / source_variance
    translation = target_mean - scale * rotation @ source_mean
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def similarity_parameters(matrix):
    """`(2, 3)` similarity matrix -> `(scale, rotation in degrees, (tx, ty))`.

    The angle is counter-clockwise in the usual x-right, y-up sense, i.e.
    clockwise on screen (image y points down).
    """
    matrix = np.asarray(matrix, np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"`matrix` must be (2, 3). Received: matrix.shape={matrix.shape}")
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    angle = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
    return scale, angle, (float(matrix[0, 2]), float(matrix[1, 2]))


def transform_points(matrix, points):
    """Applies a `(2, 3)` affine matrix to `(N, 2)` points."""
    points = _points(points, "points")
    return points @ np.asarray(matrix, np.float64)[:, :2].T + np.asarray(matrix)[:, 2]


def align_face(image, landmarks, size=ALIGNED_SIZE):
    """Warps the face whose five landmarks are given onto the ArcFace template.

    Args:
        image: `(H, W, 3)` uint8 (any channel order; it is kept).
        landmarks: `(5, 2)` (x, y) in `LANDMARK_NAMES` order, pixels of `image`.
        size: output side; the template is scaled by `size / 112`.

    Returns:
        `(size, size, 3)` uint8; pixels from outside `image` are black.
    """
    landmarks = _points(landmarks, "landmarks")
    if landmarks.shape != ARCFACE_TEMPLATE.shape:
        raise ValueError(
            f"`landmarks` must be {ARCFACE_TEMPLATE.shape} ({', '.join(LANDMARK_NAMES)}). "
            f"Received: landmarks.shape={landmarks.shape}"
        )
    matrix = estimate_similarity(landmarks, ARCFACE_TEMPLATE * (size / ALIGNED_SIZE))
    return cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
