"""MTCNN face scores on true faces and on non-faces: where `catface align --min-confidence` sits.

    python benchmarks/detection_scores.py --faces /work/shared/celeba_sample/img_align_celeba \
        --num-faces 300 --num-non-faces 300 --json scores.json

Faces: photos of one face each (CelebA's aligned 178x218 photos); the score of
the largest detection is a true face's. Non-faces, each `(200, 200, 3)`:
crops of the photos' backgrounds (corners, upscaled), the photos' faces cut
into 4x4 tiles and shuffled, and procedural textures (white and smooth noise,
stripes, checkerboards, ellipses, gradients); every detection in them is
false. MTCNN's last stage already drops scores <= 0.8, so the non-face
distribution is that of the false detections `catface align` would keep.
Without `--faces` the faces are `catface_keras.data.synthetic.render_face`
on a grey canvas (no real photos needed).

Measured 2026-12-06 (MTCNN 1.0.0, CPU, 1500 CelebA photos, 1500 non-faces):
faces: 6 missed, score quantiles 1 % 0.930, 5 % 0.969, 10 % 0.984, median 0.9986,
min 0.845; non-faces: no detection in any texture, noise or background crop;
263 false detections in 210 of the 500 scrambled faces, 1 % 0.812, 25 % 0.901,
median 0.959, max 0.99996. Kept at a threshold (faces, false detections):
0.8: 100 %, 263; 0.9: 99.3 %, 197; 0.95: 97.7 %, 143; 0.97: 94.7 %, 116;
0.99: 84.3 %, 59. `DEFAULT_MIN_CONFIDENCE` (0.9) in
catface_keras/alignment/detection.py is chosen from it.
"""

import argparse
import json
import pathlib
import sys
import time

import cv2
import numpy as np

from catface_keras.alignment.detection import MtcnnDetector
from catface_keras.data.synthetic import render_face

QUANTILES = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def _read_rgb(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} does not decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def face_photos(folder, count):
    """`count` one-face photos: the first files of `folder`, or synthetic faces."""
    if folder is None:
        for index in range(count):
            photo = np.full((240, 220, 3), 180, np.uint8)
            photo[40:200, 30:190] = render_face(index % 8, index // 8, image_size=160)
            yield f"synthetic/{index}", photo
        return
    paths = sorted(pathlib.Path(folder).glob("*.jpg"))[:count]
    if not paths:
        raise ValueError(f"--faces {folder} holds no .jpg photos")
    for path in paths:
        yield path.name, _read_rgb(path)


def _procedural(kind, rng, side=200):
    if kind == "white_noise":
        return rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    if kind == "smooth_noise":
        cells = int(rng.integers(3, 12))
        small = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
        return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    if kind == "stripes":
        period = int(rng.integers(6, 40))
        angle = rng.uniform(0, np.pi)
        y, x = np.mgrid[:side, :side]
        wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
        colour = rng.uniform(0, 255, 3)
        return (127 + 127 * wave[..., None] * (colour / 255)[None, None]).astype(np.uint8)
    if kind == "checkerboard":
        cell = int(rng.integers(8, 50))
        y, x = np.mgrid[:side, :side]
        board = ((x // cell + y // cell) % 2).astype(np.uint8) * 255
        return np.repeat(board[..., None], 3, axis=2)
    if kind == "ellipses":
        image = np.full((side, side, 3), rng.integers(0, 256, 3), np.uint8)
        for _ in range(int(rng.integers(3, 9))):
            centre = tuple(int(v) for v in rng.integers(0, side, 2))
            axes = tuple(int(v) for v in rng.integers(5, side // 3, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        return image
    y, x = np.mgrid[:side, :side] / side
    a, b = rng.uniform(-1, 1, 2)
    ramp = (a * x + b * y)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    return (ramp[..., None] * rng.uniform(0, 255, 3)).astype(np.uint8)


PROCEDURAL = ("white_noise", "smooth_noise", "stripes", "checkerboard", "ellipses", "gradient")


def non_face_images(faces, count, seed=0):
    """`count` `(kind, image)` non-faces, a third each: backgrounds, scrambled faces, textures."""
    rng = np.random.default_rng(seed)
    faces = list(faces)
    for index in range(count):
        kind = index % 3
        if kind == 0 and faces:
            _, photo = faces[index % len(faces)]
            height, width = photo.shape[:2]
            corner = int(rng.integers(4))
            size = min(height, width) // 3
            top = 0 if corner < 2 else height - size
            left = 0 if corner % 2 == 0 else width - size
            crop = photo[top : top + size, left : left + size]
            yield "background", cv2.resize(crop, (200, 200), interpolation=cv2.INTER_LINEAR)
        elif kind == 1 and faces:
            _, photo = faces[index % len(faces)]
            square = cv2.resize(photo, (200, 200))
            tiles = [square[r : r + 50, c : c + 50] for r in range(0, 200, 50)
                     for c in range(0, 200, 50)]
            order = rng.permutation(len(tiles))
            rows = [np.concatenate([tiles[order[r * 4 + c]] for c in range(4)], axis=1)
                    for r in range(4)]
            yield "scrambled_face", np.concatenate(rows, axis=0)
        else:
            procedural = PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
            yield procedural, _procedural(procedural, rng)


def _quantiles(scores):
    if not scores:
        return {}
    return {f"q{q:g}": round(float(np.quantile(scores, q)), 5) for q in QUANTILES}


def measure(detector, faces, non_faces):
    face_scores, missed = [], 0
    for _, photo in faces:
        found = detector.detect(photo)
        if not found:
            missed += 1
            continue
        face_scores.append(max(found, key=lambda face: face.area).confidence)
    false_scores, by_kind, images_with_false = [], {}, 0
    for kind, image in non_faces:
        found = detector.detect(image)
        scores = [face.confidence for face in found]
        false_scores.extend(scores)
        by_kind.setdefault(kind, []).extend(scores)
        images_with_false += bool(scores)
    return face_scores, missed, false_scores, by_kind, images_with_false


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=pathlib.Path, default=None,
                        help="folder of one-face .jpg photos (default: synthetic faces)")
    parser.add_argument("--num-faces", type=int, default=300)
    parser.add_argument("--num-non-faces", type=int, default=300)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)

    detector = MtcnnDetector()
    faces = list(face_photos(args.faces, args.num_faces))
    non_faces = list(non_face_images(faces, args.num_non_faces))
    started = time.perf_counter()
    face_scores, missed, false_scores, by_kind, images_with_false = measure(
        detector, faces, non_faces)
    seconds = time.perf_counter() - started
    thresholds = (0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
    result = {
        "faces": {"photos": len(faces), "missed": missed, "scores": _quantiles(face_scores)},
        "non_faces": {
            "images": len(non_faces),
            "images_with_a_false_detection": images_with_false,
            "false_detections": len(false_scores),
            "scores": _quantiles(false_scores),
            "by_kind": {kind: {"detections": len(scores), "max": round(max(scores), 5)}
                        for kind, scores in sorted(by_kind.items()) if scores},
        },
        "at_threshold": {
            f"{t:g}": {
                "faces_kept": round(float(np.mean(np.array(face_scores) >= t)), 4)
                if face_scores else None,
                "false_detections_kept": int(np.sum(np.array(false_scores) >= t)),
            }
            for t in thresholds
        },
        "seconds": round(seconds, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
