"""`catface inspect`: what a trained model looks at, as PNG grids per face.

    catface inspect --model runs/demo/stage1.keras --images a.jpg b.jpg --out runs/inspect

For each face (centre-cropped square, resized to the model's input size) it writes:

- `NN_<name>_gradients.png`: rows are the attributes (score: the attribute's logit) and the
  embedding (score: cosine similarity to the reference face's embedding; on the reference
  itself, whose cosine is 1 with zero gradient, the projection on its own direction, i.e. the
  embedding norm), columns the input and its tf-keras-vis Grad-CAM, Grad-CAM++ and Saliency
  maps (Grad-CAM on the SB / FR branch's last conv block).
- `NN_<name>_attention.png`: the paper's activation attention maps (sum over channels of
  squared activations, normalised to [0, 1]) of the first stage and of each branch's last
  conv block, for the face (HQ) and its degraded copy (LQ, `degrade` with --seed).

Maps are overlaid on the face (jet colour map, half blended). The reference defaults to the
first image.
"""

import pathlib
import sys

from catface_keras.cli.arguments import check_input_file, output_directory
from catface_keras.data.image_files import load_face_image


def register(subparsers):
    parser = subparsers.add_parser(
        "inspect",
        help="draw gradient and attention maps of a trained model on faces",
        description="Write PNG grids per face: tf-keras-vis Grad-CAM, Grad-CAM++ and Saliency "
        "maps for each attribute logit and for the embedding's cosine similarity to a "
        "reference face, and the paper's activation attention maps of the first and last conv "
        "blocks for the face and its degraded copy.",
    )
    parser.add_argument("--model", required=True, type=pathlib.Path, metavar="PATH.keras",
                        help="the trained model (e.g. runs/demo/stage1.keras)")
    parser.add_argument("--images", required=True, nargs="+", type=pathlib.Path,
                        metavar="IMAGE", help="face images (aligned crops work best)")
    parser.add_argument("--out", required=True, type=output_directory, metavar="DIR",
                        help="directory for the PNG grids")
    parser.add_argument("--reference", type=pathlib.Path, default=None, metavar="IMAGE",
                        help="face whose embedding the similarity maps compare to "
                        "(default: the first of --images)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the degradation of the LQ copies (default: 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing grids")
    parser.set_defaults(run=run)


def output_paths(out_dir, images):
    """`[(gradients.png, attention.png), ...]`, one pair per image."""
    return [
        (
            pathlib.Path(out_dir, f"{index:02d}_{path.stem}_gradients.png"),
            pathlib.Path(out_dir, f"{index:02d}_{path.stem}_attention.png"),
        )
        for index, path in enumerate(images)
    ]


def run(args):
    try:
        check_input_file(args.model, "model")
        for image in [*args.images, *([args.reference] if args.reference else [])]:
            if not image.is_file():
                raise ValueError(f"image {image} does not exist")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        paths = output_paths(args.out, args.images)
        existing = [str(path) for pair in paths for path in pair if path.exists()]
        if existing and not args.overwrite:
            raise ValueError(f"{existing[0]} exists; pass --overwrite to replace it")
        # TensorFlow is imported here, not at module level, to keep `catface --help` fast.
        from catface_keras.models import load_model
        from catface_keras.visualization.grids import write_png
        from catface_keras.visualization.inspection import inspection_grids

        model = load_model(args.model)
        faces = [load_face_image(path, model.image_size) for path in args.images]
        reference = load_face_image(args.reference, model.image_size) if args.reference else None
        for (gradients_path, attention_path), (gradients, attention) in zip(
            paths, inspection_grids(model, faces, reference, args.seed)
        ):
            write_png(gradients_path, gradients)
            write_png(attention_path, attention)
            print(f"catface inspect: wrote {gradients_path} and {attention_path}")
    except ValueError as error:
        print(f"catface inspect: error: {error}", file=sys.stderr)
        return 2
    return 0
