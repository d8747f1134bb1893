"""Argument types shared by the sub-commands: output paths checked while parsing.

A wrong `--out` is reported by argparse (`catface train: error: argument --out: ...`,
exit 2) before any work and before anything is written.
"""

import argparse
import pathlib

from catface_keras.choices import IMAGE_SUFFIXES, INFERENCE_PRECISIONS


def output_directory(text):
    """`--out DIR`: a directory that may not exist yet, but not an existing file."""
    path = pathlib.Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{path} is an existing file; --out must be a directory (give a new or existing "
            "folder)"
        )
    _check_parents(path)
    return path


def output_image(text):
    """`--out PATH.png`: an image file name (its suffix picks the format), not a directory."""
    path = pathlib.Path(text)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{path} has no image extension; expected a name ending in "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory; --out must be an image file")
    _check_parents(path)
    return path


def add_precision_argument(parser, default, what):
    """`--precision auto|float32|bfloat16|float16`: what the model `what` (computes in)."""
    parser.add_argument(
        "--precision", choices=INFERENCE_PRECISIONS, default=default,
        help=f"the arithmetic {what}: 'auto' is bfloat16 on a CPU with native bf16 "
        "(AVX-512-BF16, AMX), float16 on a GPU, float32 elsewhere; weights, inputs and "
        f"outputs stay float32 (default: {default})",
    )


def check_input_file(path, what):
    """Raises `ValueError` unless `path` is an existing file, saying whether it is missing
    or a directory (`what` names the argument: "model", "checkpoint" ...)."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory; give the file itself")
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    return path


def add_pairs_file_arguments(parser, file_flag, root_flag, purpose):
    """`FILE_FLAG FILE` (a `.bin` or a pair list) and `ROOT_FLAG DIR` (the folder the pair
    list's paths are relative to); `purpose` completes "FILE_FLAG: ..." in the help."""
    parser.add_argument(
        file_flag, type=pathlib.Path, default=None, metavar="FILE",
        help=f"{purpose}: an insightface .bin, or a pair list as `catface evaluate "
        f"--pairs-file` reads (LFW pairs.txt or 'path1 path2 label' lines) with paths relative "
        f"to {root_flag}",
    )
    parser.add_argument(
        root_flag, type=pathlib.Path, default=None, metavar="DIR",
        help=f"the folder a {file_flag} pair list's paths are relative to (default: the pair "
        "list's folder)",
    )


def checked_pairs_file(pairs_file, root, file_flag, root_flag):
    """`(pairs_file, root)` for `pairs_file_data`, or None without `pairs_file`; the root
    defaults to the pair list's folder.

    Raises:
        ValueError: naming the flag: the file is missing, a pair list's root is not a
            folder, or a root is given without a file.
    """
    if pairs_file is None:
        if root is not None:
            raise ValueError(f"{root_flag} goes with {file_flag}")
        return None
    root = root or pairs_file.parent
    if not pairs_file.is_file():
        raise ValueError(f"{file_flag} {pairs_file} is not a file")
    if pairs_file.suffix.lower() != ".bin" and not root.is_dir():
        raise ValueError(f"{root_flag} must be the folder the pair list's paths are relative "
                         f"to. Received: {root_flag} {root}")
    return pairs_file, root


def check_output_file(path, argument="--out"):
    """Raises `argparse.ArgumentTypeError` unless `path` can be written as a file: it must
    not be a directory, and no existing parent may be a file."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{argument} {path} is a directory; give the name of the file to write"
        )
    _check_parents(path)
    return path


def _check_parents(path):
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(
                    f"{path} cannot be created: {parent} is a file, not a directory"
                )
            return
