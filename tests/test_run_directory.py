"""One run owns an output directory: a second live run is refused, a killed run's claim taken over."""

import errno
import fcntl
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

from catface_keras import run_directory
from catface_keras.cli.main import main
from catface_keras.config import config_from_dict
from catface_keras.run_directory import (
    STAGE2,
    OutputDirectoryError,
    RunDirectoryBusyError,
    lock_path,
    owned_directory,
    worker_run_directory,
)
from catface_keras.trainer import run_stage1
from tiny_models import TINY_EXPERIMENT as TINY

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]

# Claims the directory argv[1], says so, then waits for a line on stdin (or kills itself).
HOLDER = textwrap.dedent("""
    import os, signal, sys
    from catface_keras.run_directory import owned_directory

    with owned_directory(sys.argv[1]):
        print("held", flush=True)
        if sys.argv[2] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()
""")


def start_holder(out, how="wait"):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), how],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def dead_pid():
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def write_owner(out, pid, host=None):
    lock_path(out).write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    ))


def test_lock_sits_beside_the_directory_and_names_the_owner(tmp_path):
    out = tmp_path / "run"
    assert lock_path(out) == tmp_path.resolve() / ".run.lock"
    assert lock_path(tmp_path / "sub" / ".." / "run") == lock_path(out)
    with owned_directory(out):
        owner = json.loads(lock_path(out).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert not out.exists()  # claiming creates nothing the run would not
    assert not lock_path(out).exists()


def test_a_directory_in_a_parent_it_cannot_write_holds_its_lock_inside(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    writable = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != tmp_path.resolve()
                        and writable(path, mode))
    assert lock_path(out) == out.resolve() / ".run.lock"
    with owned_directory(out):
        assert lock_path(out).exists()
    assert sorted(out.iterdir()) == []


def test_a_lock_file_it_cannot_open_is_an_error_naming_it(tmp_path):
    out = tmp_path / "run"
    lock_path(out).mkdir()  # as unopenable as another user's file, also for root
    with pytest.raises(OutputDirectoryError, match=f"Cannot claim {out} .*{lock_path(out)}"):
        with owned_directory(out):
            pass


def test_a_second_run_is_refused_while_the_first_is_alive(tmp_path):
    out = tmp_path / "run"
    holder = start_holder(out)
    try:
        with pytest.raises(RunDirectoryBusyError) as refused:
            with owned_directory(out):
                pass
        message = str(refused.value)
        assert str(out) in message and f"pid {holder.pid} " in message
        assert str(lock_path(out)) in message
        # Two spellings of one directory are one directory.
        with pytest.raises(RunDirectoryBusyError):
            with owned_directory(tmp_path / "." / "run"):
                pass
    finally:
        holder.communicate("\n")
    assert holder.returncode == 0 and not lock_path(out).exists()
    with owned_directory(out):  # released: the next run gets it
        pass


def test_a_training_run_into_an_owned_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(json.dumps(TINY))
    with owned_directory(out):
        # Before: both runs trained into the same files.
        with pytest.raises(RunDirectoryBusyError, match=f"pid {os.getpid()} "):
            run_stage1(config_from_dict(TINY), out, verbose=0)
        assert main(["train", "--config", str(config_path), "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert f"{out} is in use by another training run (pid {os.getpid()} " in error
    assert not out.exists()


def test_a_killed_run_is_taken_over_and_said_so(tmp_path, caplog):
    out = tmp_path / "run"
    killed = start_holder(out, "kill")
    killed.wait()
    assert killed.returncode == -9 and lock_path(out).exists()  # the file stays, its lock not
    with caplog.at_level(logging.WARNING, logger=run_directory.__name__):
        with owned_directory(out):
            assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert f"pid {killed.pid} " in caplog.text and f"Taking over {out} " in caplog.text
    assert not lock_path(out).exists()


def test_a_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    write_owner(out, pid)
    with caplog.at_level(logging.WARNING, logger=run_directory.__name__):
        with owned_directory(out):
            pass
    assert f"pid {pid} on host {socket.gethostname()}" in caplog.text
    assert not lock_path(out).exists()


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="inside"):
        with owned_directory(out):
            raise RuntimeError("inside")
    assert not lock_path(out).exists()
    # A stage 2 without its stage-1 model fails inside the claim.
    from catface_keras.models.builders import MissingStage1Error
    from catface_keras.trainer import run_stage2

    with pytest.raises(MissingStage1Error):
        run_stage2(config_from_dict(TINY), out, verbose=0)
    assert not lock_path(out).exists()
    with owned_directory(out):
        pass


def test_without_flock_a_live_owner_on_this_host_is_still_respected(tmp_path, monkeypatch):
    def no_flock(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    out = tmp_path / "run"
    write_owner(out, os.getppid())
    with pytest.raises(RunDirectoryBusyError, match=f"pid {os.getppid()} "):
        with owned_directory(out):
            pass
    write_owner(out, os.getppid(), host="another-host")  # cannot tell: refused
    with pytest.raises(RunDirectoryBusyError, match="on host another-host"):
        with owned_directory(out):
            pass
    write_owner(out, dead_pid())
    with owned_directory(out):
        pass
    assert not lock_path(out).exists()


def test_only_the_chief_owns_the_directory(tmp_path):
    out, scratch = tmp_path / "run", tmp_path / "worker"
    scratch.mkdir()
    holder = start_holder(out)
    try:
        # A non-chief worker writes into its scratch directory while its chief owns `out`.
        config = config_from_dict(TINY)
        with worker_run_directory(config, out, False, STAGE2, scratch) as work:
            assert work == scratch
        with pytest.raises(RunDirectoryBusyError):
            with worker_run_directory(config, out, False, STAGE2, out):
                pass
    finally:
        holder.communicate("\n")
