"""`catface degrade`: a picture grid of the LQ degradations applied to a face.

Rows are degradation families (turbulence, sensor noise, low resolution, motion blur, JPEG,
exposure, and the training mix), columns increasing strength (turbulence D/r0 0.25, 0.5, 1, 2),
after the untouched input in the first column (`catface_keras.visualization.degradation_grid`).
Example:

    catface degrade --input face.jpg --out grid.png
    catface degrade --input face.jpg --out grid.png --config training/configs/demo.yaml
"""

import pathlib
import sys

import numpy as np

from catface_keras.cli.arguments import output_image
from catface_keras.config import ConfigError, load_config
from catface_keras.data.image_files import MIN_SIZE, face_image_files, load_face_image


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
    parser.add_argument("--out", required=True, type=output_image, metavar="PATH.png",
                        help="where to write the grid (.png, .jpg, ...)")
    parser.add_argument("--config", type=pathlib.Path, default=None, metavar="FILE",
                        help="YAML config whose `degrade:` section the mix row uses "
                        "(default: the built-in defaults)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--size", type=int, default=112,
                        help="faces are centre-cropped square and resized to this (default: 112)")
    parser.add_argument("--max-images", type=int, default=1,
                        help="faces taken from a directory, one grid block each (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.set_defaults(run=run)


def run(args):
    try:
        if args.size < MIN_SIZE:
            raise ValueError(f"--size must be at least {MIN_SIZE}, got {args.size}")
        if args.max_images < 1:
            raise ValueError(f"--max-images must be at least 1, got {args.max_images}")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        faces = [load_face_image(path, args.size)
                 for path in face_image_files(args.input, args.max_images)]
        if args.out.exists() and not args.overwrite:
            raise ValueError(f"{args.out} exists; pass --overwrite to replace it")
        config = None
        if args.config is not None:
            config = load_config(args.config).degrade
        # TensorFlow is imported here, not at module level, to keep `catface --help` fast.

        from catface_keras.visualization.degradation_grid import degradation_grid
        from catface_keras.visualization.grids import write_png

        grid = np.concatenate(
            [degradation_grid(face, args.seed, config) for face in faces], axis=0
        )
        write_png(args.out, grid)
    except (ValueError, ConfigError) as error:
        print(f"catface degrade: error: {error}", file=sys.stderr)
        return 2
    print(f"catface degrade: wrote {args.out} ({grid.shape[1]} x {grid.shape[0]} px)")
    return 0
