"""`catface data convert`: a face dataset converted once into TFRecord shards.

    catface data convert --source celeba --input data/celeba --out shards/celeba --image-size 112
    catface data convert --source recordio --input faces_emore/train.rec --out shards/ms1mv2
    catface data convert --source image_folder --input faces/ --attributes-csv faces.csv \
        --out shards/faces

`--source` is any source of `catface_keras.data.registry` that converts.

The shards are what `data.source: tfrecord` trains from. CelebA's train
partition goes to `--out`, its held-out test identities to `--out/heldout`.
"""

import pathlib
import sys

from catface_keras.cli.errors import report_os_error
from catface_keras.data.registry import CONVERT
from catface_keras.data.registry import SOURCES as FACE_SOURCES
from catface_keras.data.registry import face_source, source_names

SOURCES = source_names(CONVERT)
# Sources that read a separate attribute CSV.
ATTRIBUTE_CSV_SOURCES = tuple(name for name in SOURCES if FACE_SOURCES[name].attributes_csv)


def register(subparsers):
    parser = subparsers.add_parser(
        "data",
        help="prepare face datasets (convert to TFRecord shards)",
        description="Prepare face datasets for training.",
    )
    commands = parser.add_subparsers(dest="data_command", required=True)
    convert = commands.add_parser(
        "convert",
        help="convert a face dataset (" + ", ".join(SOURCES) + ") into TFRecord shards",
        description="Decode every image once (undecodable ones are skipped and counted), "
        "optionally crop and resize it, and write TFRecord shards plus dataset.json, which "
        "`data.source: tfrecord` trains from. CelebA's held-out test identities go to OUT/heldout.",
    )
    convert.add_argument("--source", required=True, choices=SOURCES, help="the input's format")
    convert.add_argument("--input", required=True, type=pathlib.Path, metavar="PATH",
                         help="; ".join(f"{name}: {FACE_SOURCES[name].path}" for name in SOURCES))
    convert.add_argument("--attributes-csv", type=pathlib.Path, default=None, metavar="CSV",
                         help="image_folder: per-image `path,attr,...`; recordio: per-class "
                         "`identity,attr,...`")
    convert.add_argument("--attribute-names", default=None, metavar="NAME,NAME",
                         help="attributes to keep, comma-separated (default: the source's own; "
                         "Male,Bald,Big_Nose,Chubby,Narrow_Eyes for most, Male for recordio)")
    convert.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR",
                         help="output directory")
    convert.add_argument("--shards", type=int, default=None, metavar="N",
                         help="number of shards (default: one per 5000 images); at least the "
                         "number of training workers")
    convert.add_argument("--image-size", type=int, default=None, metavar="S",
                         help="centre-crop square and resize to S px (default: keep each "
                         "image's size)")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace shards already in --out (the new set is written beside "
                         "the old one and swapped in once complete)")
    convert.add_argument("--max-image-pixels", type=int, default=None, metavar="N",
                         help="skip images whose header announces more pixels (default: "
                         "40000000)")
    convert.set_defaults(run=run_convert)


def _attribute_names(args):
    if args.attribute_names is None:
        return tuple(face_source(args.source).default_attributes(args.input))
    names = tuple(name.strip() for name in args.attribute_names.split(",") if name.strip())
    if not names:
        raise ValueError(f"--attribute-names must name attributes, got {args.attribute_names!r}")
    return names


def _check_arguments(args):
    if args.shards is not None and args.shards < 1:
        raise ValueError(f"--shards must be at least 1, got {args.shards}")
    if args.image_size is not None and args.image_size < 16:
        raise ValueError(f"--image-size must be at least 16, got {args.image_size}")
    if args.max_image_pixels is not None and args.max_image_pixels < 1:
        raise ValueError(f"--max-image-pixels must be at least 1, got {args.max_image_pixels}")
    if not args.input.exists():
        raise ValueError(f"--input {args.input} does not exist")
    for candidate in (args.out, *args.out.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise ValueError(
                    f"--out must be a directory, but {candidate} is a file. "
                    f"Received: --out={args.out}"
                )
            break
    if args.attributes_csv is not None and args.source not in ATTRIBUTE_CSV_SOURCES:
        raise ValueError(f"--attributes-csv is for {' and '.join(ATTRIBUTE_CSV_SOURCES)}; "
                         f"{args.source} has its own")
    if args.attributes_csv is not None and not args.attributes_csv.is_file():
        raise ValueError(f"--attributes-csv {args.attributes_csv} is not a file")


def run_convert(args):
    try:
        _check_arguments(args)
        names = _attribute_names(args)
        written = convert(args, names)
    except (ValueError, FileExistsError) as error:
        print(f"catface data convert: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        return report_os_error(
            "catface data convert", error, args.out,
            f"nothing was replaced: {args.out} is as it was",
        )
    for directory, metadata in written:
        skipped = metadata["skipped"]
        print(
            f"catface data convert: wrote {metadata['num_examples']} images of "
            f"{metadata['num_classes']} identities in {len(metadata['shards'])} shard(s) to "
            f"{directory}; skipped {skipped['count']} undecodable"
            + (f" ({'; '.join(skipped['examples'][:3])})" if skipped["count"] else "")
        )
    return 0


def convert(args, attribute_names):
    """Reads the input and writes the shards; `[(directory, metadata), ...]`."""
    # Imported here so that argument errors come back without loading TensorFlow.
    from catface_keras.atomic_files import replacing_directory
    from catface_keras.data.decoding import set_max_image_pixels
    from catface_keras.data.tfrecord import holds_shards, write_tfrecord_shards

    set_max_image_pixels(args.max_image_pixels)

    sets = [
        (args.out / folder, faces)
        for folder, faces in face_source(args.source).conversion_sets(
            args.input, args.attributes_csv, attribute_names
        )
    ]
    for directory, _ in sets:
        if holds_shards(directory) and not args.overwrite:
            raise FileExistsError(
                f"{directory} already holds TFRecord shards; choose another --out or pass "
                "--overwrite to replace them."
            )
    written = []
    # Every set is written into one new directory, which replaces --out only when all are
    # complete (other files in --out are kept): a failure leaves the old sets as they were.
    def keep(name):
        return not _replaced(name, sets, args.out)

    with replacing_directory(args.out, keep=keep) as new:
        for directory, source in sets:
            shards = args.shards if args.shards is None else min(args.shards, len(source))
            metadata = write_tfrecord_shards(
                source, new / directory.relative_to(args.out), num_shards=shards,
                image_size=args.image_size, overwrite=True,
            )
            written.append((directory, metadata))
    return written


def _replaced(name, sets, out):
    """Whether the entry `name` of --out belongs to the sets being written."""
    from catface_keras.data.tfrecord import METADATA_FILE, SHARD_SUFFIX

    nested = {directory.relative_to(out).parts[0] for directory, _ in sets if directory != out}
    return name.startswith(METADATA_FILE) or SHARD_SUFFIX in name or name in nested
