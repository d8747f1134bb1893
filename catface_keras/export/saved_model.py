"""A versioned SavedModel directory in the layout TF Serving loads, written all or nothing.

    saved_models/NAME/            --model_base_path of tensorflow_model_server
      1/
        saved_model.pb  variables/  assets/
        assets.extra/tf_serving_warmup_requests
      2/ ...

TF Serving serves the highest integer version and ignores other names. A version is built in
a hidden scratch directory next to it (`.N.partial-*`) and renamed into place only once the
SavedModel and its warm-up file are complete; a failure removes the scratch directory, so a
half-written version never appears. (A process killed outright can leave a `.N.partial-*`
directory behind; TF Serving ignores it and it is safe to delete.)
"""

import os
import pathlib
import shutil
import tempfile

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


def next_version(base_dir):
    """1 + the highest existing version in `base_dir`, or 1."""
    return max(existing_versions(base_dir), default=0) + 1


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
    model, base_dir, version=None, overwrite=False, warmup_batch_sizes=WARMUP_BATCH_SIZES
):
    """Exports `model` for TF Serving as `base_dir/version`; returns that path.

    Args:
        model: a model following the contract of `catface_keras.export.serving`.
        base_dir: the model's base path (`saved_models/NAME`); its name is the model name
            written into the warm-up requests.
        version: int version number; default 1 + the highest existing one, or 1.
        overwrite: replace an existing version directory instead of refusing.
        warmup_batch_sizes: batch sizes of the warm-up requests.

    Raises:
        FileExistsError: the version exists and `overwrite` is False.
        ImportError: `tensorflow_serving` (the warm-up protos) is not installed.
    """
    serving_apis()  # Fail before the export, not after it.
    base_dir = pathlib.Path(base_dir)
    target = version_directory(base_dir, version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} exists; pass overwrite=True (--overwrite) to replace it"
        )
    base_dir.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=base_dir))
    try:
        built = scratch / "saved_model"
        serving_archive(model).write_out(str(built), verbose=False)
        write_warmup_requests(built, base_dir.resolve().name, warmup_batch_sizes)
        _move_into_place(built, target, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _move_into_place(built, target, scratch):
    """Renames `built` to `target`; an existing `target` is first moved aside into `scratch`."""
    if not target.exists():
        os.replace(built, target)
        return
    previous = scratch / "previous"
    os.replace(target, previous)
    try:
        os.replace(built, target)
    except OSError:
        os.replace(previous, target)
        raise
