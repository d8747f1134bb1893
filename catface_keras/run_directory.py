"""A training run's output directory: its files, who may write it, when it may be replaced.

An output directory holds:

    stage1.keras          the trained stage-1 network, for inference (written once
                          training ends)
    stage2.keras          the trained stage-2 (fused) network
    metrics.json          held-out evaluation, `{"stage1": ..., "stage2": ...}`
    config.yaml           the configuration the run used
    stage2_config.yaml    stage 2's configuration, when it differs from config.yaml
    checkpoints/          one `.keras` training model per epoch (`stage2_epoch_*` for
                          stage 2): the network and its AdaFace head
    logs/                 TensorBoard (`logs/stage2/` for stage 2)
    backup/, backup_stage2/
                          what resuming needs (`catface_keras.callbacks.EpochBackup`)
                          while running

Every file is written atomically (`catface_keras.atomic_files`): a process
killed at any moment leaves the previous version, never a truncated one. A
run that was killed resumes from its backup directory when started again
with the same directory; a directory that already holds a finished run of
that stage is refused unless `overwrite=True`. An overwrite trains in a
hidden sibling directory (`.NAME.partial`, stage 1's files linked in when
only stage 2 is replaced) and swaps it into place only once the new models
and metrics are written: until then, and after any failure, the old run is
untouched (a killed overwrite resumes from the sibling). Overwriting stage 1
also replaces the stage-2 results built on it.

One run owns a directory at a time (`owned_directory`): a second run into
it is refused while the first is alive, and a killed run's claim is taken
over by the next. Under multi-worker training only the chief writes into
the directory and owns it; the other workers write into scratch directories.

This module does not load TensorFlow.
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import logging
import os
import pathlib
import shutil
import socket

import yaml

from catface_keras.atomic_files import (
    describe_write_error,
    remove_path,
    replacing_directory,
    require_directory_path,
    scratch_directory,
    write_text_atomically,
)
from catface_keras.config import config_to_dict

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
STAGE2_CONFIG_FILE = "stage2_config.yaml"
BACKUP_METADATA = "training_metadata.json"


@dataclasses.dataclass(frozen=True)
class StageLayout:
    """Where one training stage keeps its files inside the output directory."""

    model_file: str
    backup_dir: str
    checkpoint_pattern: str
    logs_dir: str
    learning_rate_key: str  # the config key to lower when the stage diverges
    config_file: str  # written beside the run's config.yaml when this stage's differs


STAGE1 = StageLayout(
    "stage1.keras", "backup", "checkpoints/epoch_{epoch:03d}.keras", "logs",
    "optimizer.learning_rate", CONFIG_FILE,
)
STAGE2 = StageLayout(
    "stage2.keras", "backup_stage2", "checkpoints/stage2_epoch_{epoch:03d}.keras", "logs/stage2",
    "stage2.learning_rate", STAGE2_CONFIG_FILE,
)
LAYOUTS = (STAGE1, STAGE2)


class OutputDirectoryError(RuntimeError):
    """The output directory holds a finished run that would be overwritten."""


class BackupError(OutputDirectoryError):
    """A stage's backup cannot be read to resume from."""


class OutputWriteError(OutputDirectoryError):
    """A result could not be written (a full disk); nothing finished was lost."""


class RunDirectoryBusyError(OutputDirectoryError):
    """Another training run, still alive, owns the output directory."""


# === What is in a directory ===


def read_backup_metadata(backup_dir):
    """The committed backup's metadata (`{"epoch": N, ...}`), or None when there is none."""
    path = pathlib.Path(backup_dir, BACKUP_METADATA)
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text())
        int(metadata["epoch"])
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(
            f"Cannot resume: {path} is damaged ({error}). Delete {backup_dir} to train this "
            "stage again from its first epoch."
        ) from None
    return metadata


def completed_epochs(out_dir, layout=STAGE1):
    """Epochs finished by an interrupted run of a stage in `out_dir` (0 if none).

    Reads the backup's metadata, so that the data stream can restart at the
    same epoch as the weights.
    """
    metadata = read_backup_metadata(pathlib.Path(out_dir, layout.backup_dir))
    return 0 if metadata is None else int(metadata["epoch"])


def stage_finished(out_dir, layout):
    """Whether `out_dir` holds a finished (not interrupted) run of a stage."""
    out_dir = pathlib.Path(out_dir)
    return (out_dir / layout.model_file).exists() and not (out_dir / layout.backup_dir).exists()


def config_differences(config, path):
    """Dotted keys in which the YAML file `path` differs from `config` (None: unreadable)."""
    try:
        saved = yaml.safe_load(pathlib.Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None

    def flat(value, prefix=""):
        if isinstance(value, dict):
            items = {}
            for key, inner in value.items():
                items.update(flat(inner, f"{prefix}{key}."))
            return items
        return {prefix[:-1]: value}

    new, old = flat(config_to_dict(config)), flat(saved if isinstance(saved, dict) else {})
    return sorted(key for key in new.keys() | old.keys() if new.get(key) != old.get(key))


def write_run_config(config, out_dir, layout):
    """Writes the configuration a stage trains with.

    Stage 1 starts a run: its configuration is the run's config.yaml. A later
    stage keeps the config.yaml of the run it builds on and writes its own
    beside it (`layout.config_file`) when it differs.
    """
    out_dir = pathlib.Path(out_dir)
    name = CONFIG_FILE
    if layout.config_file != CONFIG_FILE and (out_dir / CONFIG_FILE).exists():
        if not config_differences(config, out_dir / CONFIG_FILE):
            return
        name = layout.config_file
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(yaml.safe_dump(config_to_dict(config), sort_keys=False), out_dir / name)


def write_json_atomically(value, path):
    write_text_atomically(json.dumps(value, indent=2, sort_keys=True) + "\n", path)


# === When a run may write ===


def _require_directory(out_dir):
    try:
        require_directory_path(out_dir)
    except ValueError as error:
        raise OutputDirectoryError(str(error)) from None


def check_output_directory(out_dir, overwrite, layout=STAGE1):
    """Refuses to train a stage over its finished run unless `overwrite`.

    Returns:
        Whether a finished run must be replaced (it is left in place here;
        `run_directory` replaces it once the new run has finished).
    """
    out_dir = pathlib.Path(out_dir)
    _require_directory(out_dir)
    finished = out_dir / layout.model_file
    if stage_finished(out_dir, layout):
        if not overwrite:
            raise OutputDirectoryError(
                f"{out_dir} already holds a finished run ({finished}). Choose another "
                "output directory or pass --overwrite to replace it."
            )
        return True
    return False


def plan_stages(config, out_dir, stages, overwrite):
    """The stages to run into `out_dir`: `(1, 2)` after a finished stage 1 goes on with 2.

    Raises:
        OutputDirectoryError: `out_dir` holds a finished stage 1 of another
            configuration (its config.yaml differs), which stage 2 would build on.
    """
    out_dir = pathlib.Path(out_dir)
    stages = tuple(stages)
    if stages != (1, 2) or overwrite or not stage_finished(out_dir, STAGE1):
        return stages
    if stage_finished(out_dir, STAGE2):
        return stages  # refused by run_stage1 without --overwrite
    differences = config_differences(config, out_dir / CONFIG_FILE)
    if differences:
        raise OutputDirectoryError(
            f"{out_dir} holds a finished stage 1 of another configuration ({out_dir / CONFIG_FILE} "
            f"differs in {', '.join(differences[:5])}). Choose another output directory or pass "
            "--overwrite to replace that run."
        )
    return (2,)


def _replaced_by(layout):
    """`keep(relative path)` for the files of a finished run that a new run of `layout` keeps."""
    if layout == STAGE1:
        # Everything of ours goes, stage 2 included: it was trained on this stage 1.
        ours = {METRICS_FILE, CONFIG_FILE, STAGE2_CONFIG_FILE, "checkpoints", "logs",
                STAGE1.model_file, STAGE2.model_file, STAGE1.backup_dir, STAGE2.backup_dir}
        return lambda path: path.split("/")[0] not in ours
    return lambda path: not (
        path in (STAGE2.model_file, STAGE2_CONFIG_FILE)
        or path.split("/")[0] == STAGE2.backup_dir
        or path == STAGE2.logs_dir or path.startswith(STAGE2.logs_dir + "/")
        or (path.startswith("checkpoints/stage2_epoch_"))
    )


def _has_backup(directory):
    return any((directory / layout.backup_dir).exists() for layout in LAYOUTS)


@contextlib.contextmanager
def run_directory(config, out_dir, overwrite, layout):
    """Yields the directory to train a run into, starting with the stage `layout`.

    `out_dir` itself, unless it holds a finished run of that stage and
    `overwrite`: then a hidden sibling with the files the new run keeps
    (linked), swapped into place when the block has finished. A failure
    leaves `out_dir` untouched (and the sibling, to resume from). A full
    disk becomes `OutputWriteError`.
    """
    out_dir = pathlib.Path(out_dir)
    scratch = scratch_directory(out_dir)
    try:
        if not check_output_directory(out_dir, overwrite, layout):
            yield out_dir
            return
        if scratch.exists() and (
            not _has_backup(scratch) or config_differences(config, scratch / CONFIG_FILE)
        ):
            # Nothing to resume, or an interrupted overwrite with another configuration.
            remove_path(scratch)
        try:
            with replacing_directory(out_dir, _replaced_by(layout), resume=True) as work:
                yield work
        except BaseException:
            if not _has_backup(scratch):
                remove_path(scratch)  # nothing trained yet: nothing to resume
            raise
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        kept = f"; the new run so far is in {scratch}" if scratch.exists() else ""
        raise OutputWriteError(
            f"{describe_write_error(error, error.filename or out_dir)}. Nothing finished was "
            f"lost: {out_dir} keeps its previous results{kept}. Free some space and run the "
            "same command again: training resumes from its last finished epoch."
        ) from error


@contextlib.contextmanager
def worker_run_directory(config, out_dir, overwrite, layout, write_dir):
    """`run_directory` of the run's owner on the chief; a worker's scratch directory elsewhere.

    `write_dir` is where this process writes
    (`catface_keras.distribution.worker_output_dir`): `out_dir` on the chief,
    which owns the directory while the block runs (`owned_directory`). A
    non-chief worker refuses what the chief refuses (so that it does not
    wait for a chief that stopped), and starts from the chief's backups and
    stage-1 model, which assumes a filesystem that all workers share.
    """
    out_dir, write_dir = pathlib.Path(out_dir), pathlib.Path(write_dir)
    if write_dir == out_dir:
        with owned_directory(out_dir), run_directory(config, out_dir, overwrite, layout) as work:
            yield work
        return
    if not overwrite:
        check_output_directory(out_dir, False, layout)
    for source in (scratch_directory(out_dir), out_dir):
        if _has_backup(source):
            for stage in LAYOUTS:
                if (source / stage.backup_dir).is_dir():
                    shutil.copytree(source / stage.backup_dir, write_dir / stage.backup_dir)
            break
    if layout == STAGE2 and (out_dir / STAGE1.model_file).is_file():
        shutil.copy2(out_dir / STAGE1.model_file, write_dir / STAGE1.model_file)
    yield write_dir


# === Who owns a directory ===


def lock_path(out_dir):
    """`.NAME.lock` beside `out_dir`; it guards the directory and its `.NAME.partial` sibling.

    The path is resolved first, so that two spellings of one directory share
    one lock. An existing directory in a parent this user cannot write (made
    for the run by someone else) holds its lock inside, as `.run.lock`.
    """
    path = pathlib.Path(out_dir).resolve()
    if path.is_dir() and not os.access(path.parent, os.W_OK):
        return path / ".run.lock"
    return path.with_name(f".{path.name}.lock")


def _read_owner(descriptor):
    """The owner record in an open lock file (`{}` when empty or unreadable)."""
    try:
        owner = json.loads(os.pread(descriptor, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe_owner(owner):
    if not owner:
        return "a run whose pid is not recorded"
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, "
            f"started {owner.get('started', '?')}")


def _may_be_alive(owner):
    """Whether the process that wrote `owner` may still run (checkable on this host only)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        pid = int(owner["pid"])
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except (KeyError, ValueError, TypeError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:
        pass  # alive, owned by another user
    return True


def _busy(out_dir, path, owner):
    return RunDirectoryBusyError(
        f"{out_dir} is in use by another training run ({_describe_owner(owner)}). Wait for it "
        f"to finish or choose another output directory; if that run is no longer running, "
        f"delete {path}."
    )


def _lock(out_dir, path):
    """An open descriptor of `path` that holds its lock, and the previous owner's record."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                raise _busy(out_dir, path, _read_owner(descriptor)) from None
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                locked = False  # a file system without flock: the pid check below, best effort
            # The owner before us deletes the file as it lets go: ours must still be the file.
            if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                previous = _read_owner(descriptor)
                if not locked and previous and _may_be_alive(previous):
                    raise _busy(out_dir, path, previous)
                return descriptor, previous
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)


@contextlib.contextmanager
def owned_directory(out_dir):
    """Owns `out_dir` for this process while the block runs; a second run is refused.

    The claim is an exclusive `flock` on `lock_path(out_dir)`, a file that
    records the owner's pid, host and start time. The kernel releases the
    lock when the process ends, however it ends: a killed run leaves the
    file but not the lock, and the next run takes it over (and logs whose
    claim it took). The file is removed when the block ends, also on an error.

    Raises:
        RunDirectoryBusyError: another live run owns `out_dir` (the message
            names its pid, host and start time).
        OutputDirectoryError: the lock file cannot be written.
    """
    out_dir = pathlib.Path(out_dir)
    _require_directory(out_dir)
    path = lock_path(out_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, previous = _lock(out_dir, path)
    except OSError as error:
        raise OutputDirectoryError(
            f"Cannot claim {out_dir} for this run: {describe_write_error(error, path)}."
        ) from None
    try:
        if previous:
            logger.warning(
                "Taking over %s from a training run that ended without releasing it (%s; "
                "killed?).", out_dir, _describe_owner(previous),
            )
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "directory": str(out_dir.resolve()),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(owner).encode("utf-8"), 0)
        yield out_dir
    finally:
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                os.unlink(path)
        os.close(descriptor)  # lets go of the lock
