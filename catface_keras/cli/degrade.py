"""`catface degrade`: a picture grid of the LQ degradations applied to a face.

Rows are degradation families (turbulence, sensor noise, low resolution, motion blur, JPEG,
exposure, and the training mix), columns increasing strength (turbulence D/r0 0.25, 0.5, 1, 2),
after the untouched input in the first column. Example:

    catface degrade --input face.jpg --out grid.png
"""

import pathlib
import sys

import cv2
import numpy as np

# Strength levels per family, for a 112-px crop (lengths and sizes scale with --size).
TURBULENCE_LEVELS = (0.25, 0.5, 1.0, 2.0)
NOISE_LEVELS = ((3.0, 0.25), (6.0, 0.5), (12.0, 1.0), (24.0, 2.0))
LOW_RESOLUTION_LEVELS = (56, 36, 24, 14)
MOTION_BLUR_LEVELS = (3.0, 6.0, 10.0, 15.0)
JPEG_LEVELS = (70, 40, 20, 10)
EXPOSURE_LEVELS = (-1.0, -2.0, 1.0, 1.5)
MIX_SAMPLES = 4

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_LABEL_WIDTH = 118
_HEADER_HEIGHT = 16
_GAP = 4


def register(subparsers):
    parser = subparsers.add_parser(
        "degrade",
        help="write a picture grid of the LQ degradations of a face",
        description="Degrade a face image by each LQ family at increasing strength (rows: "
        "turbulence, sensor noise, low resolution, motion blur, JPEG, exposure, the training "
        "mix; columns: input, then turbulence D/r0 0.25, 0.5, 1, 2 and matching levels) and "
        "write the grid as an image.",
    )
    parser.add_argument("--input", required=True, type=pathlib.Path, metavar="IMAGE_OR_DIR",
                        help="a face image, or a directory of them (sorted, see --max-images)")
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="PATH.png",
                        help="where to write the grid")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--size", type=int, default=112,
                        help="faces are centre-cropped square and resized to this (default: 112)")
    parser.add_argument("--max-images", type=int, default=1,
                        help="faces taken from a directory, one grid block each (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.set_defaults(run=run)


def run(args):
    try:
        faces = load_faces(args.input, args.size, args.max_images)
        if args.out.exists() and not args.overwrite:
            raise ValueError(f"{args.out} exists; pass --overwrite to replace it")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        grid = np.concatenate([degradation_grid(face, args.seed) for face in faces], axis=0)
        write_image(args.out, grid)
    except ValueError as error:
        print(f"catface degrade: error: {error}", file=sys.stderr)
        return 2
    print(f"catface degrade: wrote {args.out} ({grid.shape[1]} x {grid.shape[0]} px)")
    return 0


def load_faces(path, size, max_images=1):
    """Read faces as `(size, size, 3)` uint8 RGB arrays (centre-cropped square, resized)."""
    if size < 16:
        raise ValueError(f"--size must be at least 16, got {size}")
    if max_images < 1:
        raise ValueError(f"--max-images must be at least 1, got {max_images}")
    path = pathlib.Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in directory {path}")
        files = files[:max_images]
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"input {path} does not exist")
    faces = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read image {file}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top : top + side, left : left + side]
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        faces.append(cv2.resize(image, (size, size), interpolation=interpolation))
    return faces


def degradation_rows(face, seed):
    """`[(family, [(label, image), ...]), ...]`: each family at increasing strength."""
    # TensorFlow is imported here, not at module level, to keep `catface --help` fast.
    import tensorflow as tf

    from catface_keras import degrade

    config = degrade.DegradationConfig(jit_compile=False)
    size = face.shape[0]
    scale = size / 112.0
    batch = tf.constant(np.repeat(face[np.newaxis], 4, axis=0))
    seed = tf.constant([seed, 0], tf.int64)

    def row(images, labels):
        return list(zip(labels, np.asarray(images)))

    rows = [
        ("turbulence", row(degrade.turbulence(batch, seed, TURBULENCE_LEVELS),
                           [f"D/r0 {level:g}" for level in TURBULENCE_LEVELS])),
        ("sensor noise", row(degrade.sensor_noise(batch, seed, [r for r, _ in NOISE_LEVELS],
                                                  [s for _, s in NOISE_LEVELS]),
                             [f"std {r:g}, gain {s:g}" for r, s in NOISE_LEVELS])),
        ("low resolution", row(degrade.low_resolution(
            batch, [round(level * scale) for level in LOW_RESOLUTION_LEVELS]),
            [f"{round(level * scale)} px" for level in LOW_RESOLUTION_LEVELS])),
        ("motion blur", row(degrade.motion_blur(
            batch, seed, [level * scale for level in MOTION_BLUR_LEVELS], angle=np.pi / 6),
            [f"{level * scale:g} px" for level in MOTION_BLUR_LEVELS])),
        ("JPEG", row(degrade.jpeg(batch, JPEG_LEVELS),
                     [f"quality {level}" for level in JPEG_LEVELS])),
        ("exposure", row(degrade.exposure(batch, EXPOSURE_LEVELS),
                         [f"{level:+g} EV" for level in EXPOSURE_LEVELS])),
        ("mix", row(degrade.degrade(batch, seed, config),
                    [f"sample {index + 1}" for index in range(MIX_SAMPLES)])),
    ]
    return rows


def degradation_grid(face, seed):
    """The labelled grid for one face, `(rows, columns, 3)` uint8 RGB."""
    size = face.shape[0]
    rows = degradation_rows(face, seed)
    columns = 1 + max(len(cells) for _, cells in rows)
    cell_height = _HEADER_HEIGHT + size + _GAP
    canvas = np.full(
        (len(rows) * cell_height + _GAP, _LABEL_WIDTH + columns * (size + _GAP), 3), 255, np.uint8
    )
    for row_index, (family, cells) in enumerate(rows):
        top = row_index * cell_height + _GAP
        _put_text(canvas, family, (6, top + _HEADER_HEIGHT + size // 2 + 4), 0.45)
        for column, (label, image) in enumerate([("input", face)] + cells):
            left = _LABEL_WIDTH + column * (size + _GAP)
            _put_text(canvas, label, (left + 2, top + _HEADER_HEIGHT - 4), 0.33)
            canvas[top + _HEADER_HEIGHT : top + _HEADER_HEIGHT + size, left : left + size] = image
    return canvas


def _put_text(canvas, text, origin, scale):
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def write_image(path, rgb):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write image {path} (use a .png or .jpg name)")
