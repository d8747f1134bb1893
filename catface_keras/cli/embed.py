"""`catface embed`: face embeddings of a folder of images, with the AdaFace quality score.

    catface embed aligned/ --model runs/demo/stage2.keras --out emb.npz
    catface embed photos/ --model runs/demo/stage2.keras --out emb.npz --align

`emb.npz` (NumPy, no pickles) holds, one row per face: `embeddings` (N, D) float32
unit rows, `norms` (N,) the AdaFace feature norm (quality), `files` (N,) paths
relative to DIR, `face_index` (N,), `boxes` (N, 4) x1 y1 x2 y2, `confidence` (N,)
and `landmarks` (N, 5, 2) (NaN without --align); `skipped_files` and
`skipped_reasons` (M,) for images with no face or that do not decode; `precision` ()
what the model computed in (`--precision`) and, away from float32, `cosine_to_float32`
(2,): the min and mean cosine of the first batch's embeddings to float32's.
"""

import pathlib
import sys

import numpy as np

from catface_keras.alignment import detection
from catface_keras.atomic_files import write_atomically
from catface_keras.cli.arguments import add_precision_argument


def register(subparsers):
    parser = subparsers.add_parser(
        "embed",
        help="embeddings and quality scores of the faces in a folder of images",
        description="Embed every image under DIR (recursively) with a trained model: aligned "
        "112x112 faces as `catface align` writes them, or raw photos with --align (MTCNN "
        "detection and alignment on the fly). Writes an .npz with the flip-fused unit "
        "embeddings (as `catface evaluate` computes them), file names, boxes, detector "
        "confidence, landmarks and the AdaFace feature norm as a quality score.",
    )
    parser.add_argument("folder", type=pathlib.Path, metavar="DIR", help="folder of images")
    parser.add_argument("--model", required=True, type=pathlib.Path, metavar="PATH.keras",
                        help="a trained model (stage 1 or 2)")
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="FILE.npz",
                        help="the output file")
    parser.add_argument("--align", action="store_true",
                        help="the images are raw photos: detect and align the faces first")
    parser.add_argument("--all-faces", action="store_true",
                        help="with --align: embed every face of a photo, not only the largest")
    parser.add_argument("--min-face-size", type=int, default=20, metavar="PIXELS",
                        help="with --align: smallest face side looked for (default: 20)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="faces per model call (default: 64)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_precision_argument(parser, "float32", "the model computes in")
    parser.set_defaults(run=run)


def _check_arguments(args):
    if not args.folder.is_dir():
        raise ValueError(f"DIR {args.folder} is not a folder")
    if not args.model.is_file():
        raise ValueError(f"--model {args.model} is not a file")
    if args.out.suffix != ".npz":
        raise ValueError(f"--out must end in .npz. Received: --out {args.out}")
    if args.out.exists() and not args.overwrite:
        raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.all_faces and not args.align:
        raise ValueError("--all-faces needs --align (aligned images hold one face each)")


def write_npz_atomically(path, arrays):
    """`np.savez` to a temporary file beside `path`, fsync, rename into place."""

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary):
        with open(temporary, "wb") as file:  # a file object: np.savez adds no suffix
            np.savez(file, **arrays)

    write_atomically(path, write)


def run(args):
    program = "catface embed"
    try:
        _check_arguments(args)
        from catface_keras.alignment.photos import list_images

        names = list_images(args.folder)
        if not names:
            raise ValueError(f"DIR {args.folder} holds no images")
    except ValueError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2

    from catface_keras.alignment.embedding import embed_photos
    from catface_keras.models.inference_precision import (
        agreement_text,
        cosine_agreement,
        model_at_precision,
        resolve_precision,
    )
    from catface_keras.models.loading import load_model

    try:
        detector = detection.default_detector(args.min_face_size) if args.align else None
        reference = load_model(args.model, allow_embedder=True)
        precision = resolve_precision(args.precision)
        model = model_at_precision(reference, precision)
        paths = [args.folder / name for name in names]
        result = embed_photos(paths, model, detector, all_faces=args.all_faces,
                              batch_size=args.batch_size)
        agreement = None
        if precision != "float32" and len(result.files):
            # The first batch again in float32: the same photos give the same rows first.
            first = embed_photos(paths[: args.batch_size], reference, detector,
                                 all_faces=args.all_faces, batch_size=args.batch_size)
            if len(first.files):  # else the first batch held no face
                agreement = cosine_agreement(first.embeddings,
                                             result.embeddings[: len(first.files)])
                print(f"{program}: {precision}: {agreement_text(agreement)}")
    except (ValueError, ImportError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2

    def relative(path):
        return pathlib.Path(path).relative_to(args.folder).as_posix()

    write_npz_atomically(args.out, {
        # float32 in the file; computed in float64 as `catface evaluate` computes them.
        "embeddings": result.embeddings.astype(np.float32),
        "norms": result.norms.astype(np.float32),
        "files": np.asarray([relative(path) for path in result.files], dtype=str),
        "face_index": result.face_index,
        "boxes": result.boxes,
        "confidence": result.confidence,
        "landmarks": result.landmarks,
        "skipped_files": np.asarray([relative(path) for path, _ in result.skipped], dtype=str),
        "skipped_reasons": np.asarray([reason for _, reason in result.skipped], dtype=str),
        "precision": np.asarray(precision, dtype=str),
        **({} if agreement is None else {"cosine_to_float32": np.asarray(
            [agreement["cosine_min"], agreement["cosine_mean"]], np.float64)}),
    })
    print(f"{program}: {len(result.files)} face(s) from {len(names)} image(s) into {args.out}; "
          f"{len(result.skipped)} skipped (no face or undecodable)")
    return 0
