"""`catface align`: raw photos, one folder per person -> aligned 112x112 faces.

    catface align photos/ aligned/
    catface train ... (data.source: folder, data.path: aligned/)
"""

import pathlib
import sys

from catface_keras.alignment import detection


def register(subparsers):
    parser = subparsers.add_parser(
        "align",
        help="detect and align the faces of a folder of photos (one folder per person)",
        description="Detect faces and five landmarks (MTCNN) in SRC/PERSON/photo files, warp "
        "each face onto the ArcFace 112x112 template (similarity transform) and write "
        "DST/PERSON/photo.png, the image-folder layout that train and evaluate read. Photos "
        "without a face, or that do not decode, are listed in DST/align_report.json. DST is "
        "built beside itself and renamed into place when complete.",
    )
    parser.add_argument("source", type=pathlib.Path, metavar="SRC",
                        help="folder of person folders of photos")
    parser.add_argument("destination", type=pathlib.Path, metavar="DST",
                        help="folder to create with the aligned faces")
    parser.add_argument("--all-faces", action="store_true",
                        help="keep every face of a photo (PHOTO_face0.png, ...), not only the "
                        "largest")
    parser.add_argument("--min-face-size", type=int, default=20, metavar="PIXELS",
                        help="smallest face side looked for (default: 20)")
    parser.add_argument("--min-confidence", type=float,
                        default=detection.DEFAULT_MIN_CONFIDENCE, metavar="SCORE",
                        help="drop detections scored below this (MTCNN's last-stage score in "
                        "[0, 1]); they are listed in the report under below_min_confidence "
                        f"(default: {detection.DEFAULT_MIN_CONFIDENCE})")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes that detect and align, each with its own detector "
                        "(about one per CPU core; the output is the same for any N; default: 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing DST (once the new one is complete)")
    parser.set_defaults(run=run)


def run(args):
    program = "catface align"
    from catface_keras.alignment.folder import align_folder, check_folders

    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        if not 0.0 <= args.min_confidence <= 1.0:
            raise ValueError(f"--min-confidence must be in [0, 1], got {args.min_confidence}")
        check_folders(args.source, args.destination, args.overwrite)
        if args.workers == 1:
            detector = detection.default_detector(args.min_face_size)
        else:
            # Checked here, so that a missing package is one message, not one per worker.
            detection.check_detector_installed()
            detector = detection.detector_factory(args.min_face_size)
        summary = align_folder(args.source, args.destination, detector,
                               all_faces=args.all_faces, overwrite=args.overwrite,
                               min_confidence=args.min_confidence, workers=args.workers)
    except (ValueError, ImportError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print(f"{program}: {summary.faces} face(s) from {summary.photos_with_face} of "
          f"{summary.photos} photo(s) of {summary.identities} person(s) into "
          f"{args.destination}; no face in {summary.no_face}, undecodable {summary.undecodable}, "
          f"{summary.below_min_confidence} detection(s) below --min-confidence "
          f"{args.min_confidence:g} dropped (listed in {summary.report_path})")
    return 0
