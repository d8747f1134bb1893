"""Atomic writes: new results are written beside the old ones and renamed into place.

Every helper here writes to a temporary name in the same directory, flushes the data to
disk (`fsync`), renames it over the final name and syncs the directory, so a process killed
at any moment leaves either the old file or the new one, never a truncated file.
`replacing_directory` does the same for a whole directory (a finished training run, a set
of TFRecord shards): the new one is built in a hidden sibling and exchanged with the old one
in one rename once it is complete.

A full disk raises `OSError` (errno ENOSPC) from the write; the temporary file is removed and
the old result is untouched. `describe_write_error` turns such an error into a message.
"""

import contextlib
import ctypes
import errno
import os
import pathlib
import shutil
import zipfile


def fsync_directory(path):
    """Makes renames inside `path` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def fsync_file(path):
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_tree(path):
    """Flushes every file under `path` (or `path` itself) and its directories to disk."""
    path = pathlib.Path(path)
    if path.is_file():
        fsync_file(path)
        return
    for root, _, files in os.walk(path):
        for name in files:
            fsync_file(os.path.join(root, name))
        fsync_directory(root)


def temporary_name(path, tag="partial"):
    """A hidden name next to `path` for writing it: `dir/.NAME.partial-PID.SUFFIX`.

    It ends in `path`'s suffix, so writers that pick the format from the name
    (`cv2.imwrite`, `savefig`, `model.save`) write the right one.
    """
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}{path.suffix}")


def write_atomically(path, write):
    """Calls `write(temporary_path)`, then syncs and renames the result to `path`.

    `write` may produce a file or a directory. On any error the temporary is removed and
    `path` is unchanged.
    """
    path = pathlib.Path(path)
    temporary = temporary_name(path)
    remove_path(temporary)
    try:
        write(temporary)
        fsync_tree(temporary)
        os.replace(temporary, path)
    except BaseException:
        remove_path(temporary)
        raise
    fsync_directory(path.parent)
    return path


def write_bytes_atomically(data, path):
    def write(temporary):
        with open(temporary, "wb") as handle:
            handle.write(data)

    return write_atomically(path, write)


def write_text_atomically(text, path):
    return write_bytes_atomically(text.encode("utf-8"), path)


def save_model_atomically(model, path):
    """`model.save(path)` through a temporary `.keras` file beside it."""
    return write_atomically(path, model.save)


def remove_path(path):
    path = pathlib.Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def check_keras_archive(path):
    """Raises `ValueError` naming `path` unless it is a complete `.keras` (zip) archive.

    Older versions wrote checkpoints in place, and a process killed during the write left a
    truncated file that Keras reports as "File not found".
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    if head and head != b"PK\x03\x04":  # an empty file was cut short: said below
        raise ValueError(
            f"{path} is not a .keras model file (a .keras file is a zip archive; this one "
            "starts otherwise). A PyTorch checkpoint must be converted first with "
            "`catface import-weights`."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        detail = getattr(error, "strerror", None) or error
        raise ValueError(
            f"{path} is not a complete .keras model file (truncated or damaged: {detail}); "
            "it was probably cut short by a killed process: delete it and use an earlier "
            "checkpoint or train again."
        ) from None
    if damaged is not None:
        raise ValueError(
            f"{path} is damaged (its member {damaged} fails its checksum): delete it and use "
            "an earlier checkpoint or train again."
        )


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first, second):
    """Swaps two paths in one atomic rename (Linux `renameat2`); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(first))


def swap_into_place(new, path):
    """Puts the complete directory `new` at `path`; the previous `path` is deleted.

    Where the file system supports it the two are exchanged in one rename, so `path` always
    holds either the whole old or the whole new content.
    """
    new, path = pathlib.Path(new), pathlib.Path(path)
    fsync_tree(new)
    if not path.exists():
        os.rename(new, path)
    elif _exchange(new, path):
        remove_path(new)  # now holds the old content
    else:
        old = temporary_name(path, "old")
        os.rename(path, old)
        try:
            os.rename(new, path)
        except OSError:
            os.rename(old, path)
            raise
        remove_path(old)
    fsync_directory(path.parent)


def _link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def carry_over(old, new, keep, prefix=""):
    """Links (or copies) the entries of directory `old` into `new` where `keep(path)`.

    `path` is the entry's POSIX path relative to `old` (`checkpoints/epoch_001.keras`); a
    directory that is kept is entered, and `keep` is asked about each of its entries.
    """
    for entry in os.scandir(old):
        relative = prefix + entry.name
        target = os.path.join(new, entry.name)
        if not keep(relative) or os.path.lexists(target):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            os.mkdir(target)
            carry_over(entry.path, target, keep, relative + "/")
        else:
            _link_or_copy(entry.path, target)


def scratch_directory(path):
    """The hidden sibling in which a replacement for directory `path` is built."""
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.partial")


@contextlib.contextmanager
def replacing_directory(path, keep=lambda name: True, resume=False):
    """Builds a replacement of directory `path` in a hidden sibling; swaps it in on success.

    The entries of `path` for which `keep(name)` are linked into the sibling first, so the
    block sees them and the new directory keeps them. When the block raises, the sibling is
    removed (unless `resume`, which keeps it for the next attempt) and `path` is untouched.

    Yields:
        The sibling directory to write into.
    """
    path = pathlib.Path(path)
    scratch = scratch_directory(path)
    if scratch.exists() and not resume:
        remove_path(scratch)
    fresh = not scratch.exists()
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        if fresh and path.is_dir():
            carry_over(path, scratch, keep)
        yield scratch
    except BaseException:
        if not resume:
            remove_path(scratch)
        raise
    swap_into_place(scratch, path)


def describe_write_error(error, path):
    """A one-line message for an `OSError` met while writing `path`."""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device while writing {path}"
    if error.errno == errno.EDQUOT:
        return f"disk quota exceeded while writing {path}"
    return f"cannot write {path}: {error.strerror or error}"


def require_directory_path(path, argument="--out"):
    """Raises `ValueError` when `path` (or a parent) exists and is not a directory."""
    path = pathlib.Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise ValueError(
                    f"{argument} must be a directory, but {candidate} is a file. "
                    f"Received: {argument}={path}"
                )
            return
