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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing DST (once the new one is complete)")
    parser.set_defaults(run=run)


def run(args):
    program = "catface align"
    from catface_keras.alignment.folder import align_folder, check_folders

    try:
        check_folders(args.source, args.destination, args.overwrite)
        detector = detection.default_detector(args.min_face_size)
        summary = align_folder(args.source, args.destination, detector,
                               all_faces=args.all_faces, overwrite=args.overwrite)
    except (ValueError, ImportError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print(f"{program}: {summary.faces} face(s) from {summary.photos_with_face} of "
          f"{summary.photos} photo(s) of {summary.identities} person(s) into "
          f"{args.destination}; no face in {summary.no_face}, undecodable {summary.undecodable} "
          f"(listed in {summary.report_path})")
    return 0
