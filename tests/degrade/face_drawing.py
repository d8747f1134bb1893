"""Simple cartoon faces drawn with OpenCV, so that degradation tests need no dataset."""

import cv2
import numpy as np


def drawn_face(size=64, variant=0, height=None):
    """A `(height, size, 3)` uint8 RGB face with edges and fine texture (height: size)."""
    height = size if height is None else height
    rng = np.random.default_rng(variant)
    scale = 4  # draw large, shrink with area averaging: anti-aliased edges
    big_h, big_w = height * scale, size * scale
    rows = np.linspace(0.0, 1.0, big_h)[:, None, None]
    background = np.array(rng.uniform(60, 200, 3)) * (0.6 + 0.4 * rows)
    image = np.ascontiguousarray(np.broadcast_to(background, (big_h, big_w, 3))).astype(np.uint8)
    centre = (big_w // 2, int(big_h * 0.5))
    axes = (int(big_w * 0.3), int(big_h * 0.38))
    skin = tuple(int(v) for v in rng.uniform(120, 230, 3))
    cv2.ellipse(image, centre, axes, 0, 0, 360, skin, -1, cv2.LINE_AA)
    # Hair with thin stripes: high-frequency content that blur and compression remove.
    for x in range(0, big_w, 3 * scale):
        cv2.line(image, (x, 0), (x + 4 * scale, int(big_h * 0.2)), (40, 30, 20), scale, cv2.LINE_AA)
    for side in (-1, 1):
        eye = (centre[0] + side * int(big_w * 0.12), int(big_h * 0.42))
        cv2.circle(image, eye, int(big_w * 0.05), (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(image, eye, int(big_w * 0.025), (20, 20, 60), -1, cv2.LINE_AA)
        brow = (eye[0] - int(big_w * 0.06), eye[1] - int(big_h * 0.08))
        cv2.line(image, brow, (brow[0] + int(big_w * 0.12), brow[1]), (30, 20, 10), 2 * scale)
    cv2.line(image, (centre[0], int(big_h * 0.45)), (centre[0], int(big_h * 0.6)), (90, 60, 50),
             scale, cv2.LINE_AA)
    cv2.ellipse(image, (centre[0], int(big_h * 0.7)), (int(big_w * 0.1), int(big_h * 0.04)), 0, 0,
                180, (150, 30, 40), 2 * scale, cv2.LINE_AA)
    return cv2.resize(image, (size, height), interpolation=cv2.INTER_AREA)


def drawn_faces(count, size=64, height=None):
    """`(count, height, size, 3)` uint8 RGB faces."""
    return np.stack([drawn_face(size, variant, height) for variant in range(count)])
