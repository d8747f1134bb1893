"""A versioned SavedModel directory in the layout TF Serving loads, written all or nothing.

    saved_models/NAME/            --model_base_path of tensorflow_model_server
      1/
        saved_model.pb  variables/  assets/
        assets.extra/tf_serving_warmup_requests
      2/ ...

TF Serving serves the highest integer version and ignores other names. A version is built in
a hidden scratch directory next to it, `.N.partial`, and renamed into place only once the
SavedModel and its warm-up file are complete and synced; a failure removes the scratch
directory, so a half-written version never appears. Creating `.N.partial` (`os.mkdir`, which
fails when it exists) reserves version N: of two exports started together into one base
directory, one gets N and the other N + 1 (or, for an explicit version, a clear error); neither
replaces the other's. (A process killed outright leaves `.N.partial` behind; TF Serving ignores
it, later exports skip N, and it is safe to delete once no export is running.)
"""

import os
import pathlib
import re
import shutil

from catface_keras.atomic_files import (
    fsync_directory,
    fsync_tree,
    require_directory_path,
    swap_into_place,
)
from catface_keras.export.serving import serving_archive
from catface_keras.export.warmup import WARMUP_BATCH_SIZES, serving_apis, write_warmup_requests


def existing_versions(base_dir):
    """Sorted integer version numbers of the subdirectories of `base_dir`."""
    base_dir = pathlib.Path(base_dir)
    if not base_dir.is_dir():
        return []
    return sorted(
        int(path.name) for path in base_dir.iterdir() if path.is_dir() and path.name.isdigit()
    )


_RESERVATION = re.compile(r"\.(\d+)\.partial")


def reserved_versions(base_dir):
    """Version numbers that exports in progress (or killed ones) have reserved."""
    base_dir = pathlib.Path(base_dir)
    if not base_dir.is_dir():
        return []
    return sorted(
        int(match.group(1))
        for match in map(_RESERVATION.fullmatch, os.listdir(base_dir))
        if match is not None
    )


def next_version(base_dir):
    """1 + the highest existing (or reserved) version in `base_dir`, or 1."""
    return max(existing_versions(base_dir) + reserved_versions(base_dir), default=0) + 1


def _reserve(base_dir, version, overwrite):
    """Creates `base_dir/.N.partial` for `version` (default: the next free one).

    Returns:
        `(target, scratch)`: `base_dir/N` and the reserved scratch directory.
    """
    explicit = version is not None
    while True:
        target = version_directory(base_dir, version)
        if target.exists() and not overwrite:
            raise FileExistsError(
                f"{target} exists; pass overwrite=True (--overwrite) to replace it"
            )
        scratch = base_dir / f".{target.name}.partial"
        try:
            os.mkdir(scratch)
        except FileExistsError:
            if explicit:
                raise FileExistsError(
                    f"another export of version {target.name} is running in {base_dir} "
                    f"({scratch} exists; if no export is running, it was left by a killed "
                    "one: delete it)"
                ) from None
            version = int(target.name) + 1
            continue
        if target.exists() and not overwrite:  # created while we reserved
            os.rmdir(scratch)
            if explicit:
                raise FileExistsError(
                    f"{target} exists; pass overwrite=True (--overwrite) to replace it"
                )
            version = int(target.name) + 1
            continue
        return target, scratch


def version_directory(base_dir, version=None):
    """`base_dir/N` for `version` (default: `next_version`), checking that N is valid."""
    if version is None:
        version = next_version(base_dir)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(
            f"`version` must be a non-negative int (TF Serving's version numbers). "
            f"Received: version={version!r}"
        )
    return pathlib.Path(base_dir, str(version))


def export_saved_model(
    model, base_dir, version=None, overwrite=False, warmup_batch_sizes=WARMUP_BATCH_SIZES,
    max_image_pixels=None,
):
    """Exports `model` for TF Serving as `base_dir/version`; returns that path.

    Args:
        model: a model following the contract of `catface_keras.export.serving`.
        base_dir: the model's base path (`saved_models/NAME`); its name is the model name
            written into the warm-up requests.
        version: int version number; default 1 + the highest existing one, or 1.
        overwrite: replace an existing version directory instead of refusing.
        warmup_batch_sizes: batch sizes of the warm-up requests.
        max_image_pixels: `serving_bytes` refuses images whose header announces more pixels
            (default: `catface_keras.data.decoding.DEFAULT_MAX_IMAGE_PIXELS`).

    Raises:
        FileExistsError: the version exists and `overwrite` is False, or another export has
            reserved the explicit `version`.
        OSError: writing failed (a full disk); no version directory is left behind.
        ImportError: `tensorflow_serving` (the warm-up protos) is not installed.
    """
    serving_apis()  # Fail before the export, not after it.
    model_name = pathlib.Path(base_dir).resolve().name

    def write(built):
        write_saved_model(model, built, model_name, warmup_batch_sizes, max_image_pixels)

    return export_version(base_dir, write, version, overwrite)


def write_saved_model(
    model, directory, model_name, warmup_batch_sizes=WARMUP_BATCH_SIZES, max_image_pixels=None
):
    """The SavedModel and its warm-up file in `directory` (not atomic: see `export_version`)."""
    archive = (
        serving_archive(model) if max_image_pixels is None
        else serving_archive(model, max_image_pixels)
    )
    archive.write_out(str(directory), verbose=False)
    write_warmup_requests(directory, model_name, warmup_batch_sizes)


def export_version(base_dir, write, version=None, overwrite=False):
    """Builds version `base_dir/version` with `write(directory)`, all or nothing; returns it.

    `write` fills the directory it is given (which it may create); the version is reserved,
    built in the scratch directory and renamed into place as the module docstring says.
    Raises as `export_saved_model`.
    """
    base_dir = pathlib.Path(base_dir)
    if version is not None:
        version_directory(base_dir, version)  # checks the number
    require_directory_path(base_dir, "base_dir")
    base_dir.mkdir(parents=True, exist_ok=True)
    target, scratch = _reserve(base_dir, version, overwrite)
    try:
        built = scratch / "version"
        write(built)
        fsync_tree(built)
        _move_into_place(built, target, overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fsync_directory(base_dir)
    return target


def _move_into_place(built, target, overwrite):
    """Renames `built` to `target`; with `overwrite` an existing `target` is swapped out
    (`swap_into_place`). Without it an existing `target` is never replaced (`os.rename`
    onto a non-empty directory fails)."""
    if not target.exists():
        try:
            os.rename(built, target)
        except OSError as error:
            if target.exists():
                raise FileExistsError(
                    f"{target} appeared during the export; not replaced"
                ) from error
            raise
        return
    if not overwrite:
        raise FileExistsError(f"{target} appeared during the export; not replaced")
    swap_into_place(built, target)
