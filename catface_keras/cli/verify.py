"""`catface verify`: are two photos the same person?

    catface verify a.jpg b.jpg --model runs/demo/stage2.keras --far 1e-3
    catface verify a.jpg b.jpg --model runs/demo/stage2.keras --threshold 0.3

The score is the cosine similarity of the two faces' flip-fused embeddings;
"same person" when it is >= the threshold. The threshold at `--far` is read
from the model's calibration file (`stage2.calibration.json`, written by
`catface evaluate`), unless `--threshold` gives one; the output says which
pairs it was calibrated on (the evaluated ones, or a calibration split with the
FAR and TAR measured on the held-out rest).
"""

import math
import pathlib
import sys

from catface_keras.alignment import detection
from catface_keras.evaluation.calibration import (
    calibration_path,
    describe_calibration,
    far_text,
    load_threshold,
)
from catface_keras.evaluation.verification import cosine_scores


def register(subparsers):
    parser = subparsers.add_parser(
        "verify",
        help="compare the faces of two photos (cosine score and a decision)",
        description="Detect and align the largest face of each photo (MTCNN), embed both with "
        "the model and print their cosine score and the decision at a threshold: the one "
        "calibrated at --far by `catface evaluate` and stored beside the model "
        "(MODEL.calibration.json), or --threshold.",
    )
    parser.add_argument("first", type=pathlib.Path, metavar="A", help="first photo")
    parser.add_argument("second", type=pathlib.Path, metavar="B", help="second photo")
    parser.add_argument("--model", required=True, type=pathlib.Path, metavar="PATH.keras",
                        help="a trained model (stage 1 or 2)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--far", type=float, default=1e-3,
                        help="false accept rate whose calibrated threshold decides "
                        "(default: 1e-3)")
    choice.add_argument("--threshold", type=float, default=None,
                        help="decide at this cosine score instead of a calibrated one")
    parser.add_argument("--aligned", action="store_true",
                        help="the photos are aligned 112x112 faces already: skip detection")
    parser.add_argument("--min-face-size", type=int, default=20, metavar="PIXELS",
                        help="smallest face side looked for (default: 20)")
    parser.set_defaults(run=run)


def _threshold(args):
    """`(threshold, where it comes from)`, before anything heavy is loaded."""

    if args.threshold is not None:
        if not math.isfinite(args.threshold) or not -1 <= args.threshold <= 1:
            raise ValueError(f"--threshold must be a cosine score in [-1, 1], got "
                             f"{args.threshold}")
        return args.threshold, "given by --threshold"

    if not 0 < args.far < 1:
        raise ValueError(f"--far must be in (0, 1), got {args.far}")
    threshold = load_threshold(args.model, args.far)
    return threshold, (f"at FAR {far_text(args.far)} from {calibration_path(args.model)}, "
                       f"{describe_calibration(args.model, args.far)}")


def run(args):
    program = "catface verify"
    try:
        for name, path in (("A", args.first), ("B", args.second)):
            if not path.is_file():
                raise ValueError(f"photo {name} {path} is not a file")
        if not args.model.is_file():
            raise ValueError(f"--model {args.model} is not a file")
        threshold, origin = _threshold(args)
        from catface_keras.alignment.embedding import embed_photos
        from catface_keras.models.loading import load_model

        detector = None if args.aligned else detection.default_detector(args.min_face_size)
        model = load_model(args.model, allow_embedder=True)
        result = embed_photos([args.first, args.second], model, detector, batch_size=4)
        if result.skipped:
            raise ValueError("; ".join(f"{path}: {reason}" for path, reason in result.skipped))
    except (ValueError, ImportError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    score = float(cosine_scores(result.embeddings[:1], result.embeddings[1:])[0])
    decision = "same person" if score >= threshold else "different people"
    print(f"{program}: score {score:.4f} (cosine), threshold {threshold:.4f} {origin}: "
          f"{decision}")
    print(f"{program}: quality (AdaFace feature norm) A {result.norms[0]:.3f}, "
          f"B {result.norms[1]:.3f}")
    return 0
