"""Multi-worker training: two `catface train --workers` processes on 127.0.0.1.

The cluster runs in subprocesses (a process holds one multi-worker
strategy for its life); the single-process reference runs here.
"""

import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml

from catface_keras.config import config_from_dict
from catface_keras.distribution import is_chief, parse_workers, tf_config, worker_output_dir
from catface_keras.trainer import run_stage1

REPO = pathlib.Path(__file__).resolve().parents[2]
# Global batch 8 over 2 workers; 16 training images: 2 steps. No dropout and
# synchronised BN, so that 2 x 4 images give the gradients of 8 on one device.
CONFIG = {
    "data": {
        "num_train_identities": 4,
        "num_test_identities": 12,
        "images_per_identity": 4,
        "test_images_per_identity": 6,
        "image_size": 32,
    },
    "model": {
        "backbone": "ir_tiny",
        "embedding_dim": 16,
        "dropout": 0.0,
        "synchronized_batch_norm": True,
    },
    "train": {
        "epochs": 1, "batch_size": 8, "distribution": "none", "mixed_precision": "float32"
    },
    "evaluation": {"num_pairs": 150, "batch_size": 32, "flip": False},
}
WORKER_TIMEOUT_S = 150


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_workers(config_path, out, scratch):
    workers = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "TMPDIR": str(scratch),  # where a non-chief worker keeps its files
    }
    env.pop("TF_CONFIG", None)
    command = [sys.executable, "-m", "catface_keras.cli.main", "train", "--config",
               str(config_path), "--out", str(out), "--workers", workers]
    return [
        subprocess.Popen(
            [*command, "--task-index", str(index)], env=env, cwd=scratch,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for index in range(2)
    ]


def wait_all(processes, timeout):
    """Waits for every process; kills them all if one is late. Returns outputs."""
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        for process in processes:
            process.communicate()
        pytest.fail(f"multi-worker training did not finish in {timeout} s")
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("head", ["dense", "partial_fc"])
def test_two_workers_match_one_process_and_only_the_chief_writes(tmp_path, head):
    """Tolerance: 1e-5 absolute on the weights after 2 SGD steps (float32
    all-reduce sums in another order than one device). Gradients are clipped
    to norm 5 (the default), so this also checks that clipping sees the
    gradient summed over workers. With Partial FC each worker holds half the
    class centres (and the single process all of them, in one shard)."""
    config = CONFIG
    if head == "partial_fc":
        config = {**CONFIG, "loss": {"partial_fc_sample_rate": 1.0}}
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    processes = start_workers(config_path, tmp_path / "cluster", scratch)
    try:
        # The single-process reference trains while the cluster does.
        reference, _ = run_stage1(config_from_dict(config), tmp_path / "single", verbose=0)
    finally:
        outputs = wait_all(processes, WORKER_TIMEOUT_S)
    for index, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"worker {index}:\n{output[-3000:]}"

    cluster_dir = tmp_path / "cluster"
    assert sorted(p.name for p in cluster_dir.iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )
    assert (cluster_dir / "metrics.json").exists()
    assert not list(scratch.iterdir()), "the non-chief worker left its scratch directory"
    # The last checkpoint is the training model: the network and its AdaFace head.
    last = sorted((cluster_dir / "checkpoints").iterdir())[-1]
    trained = keras.saving.load_model(last, compile=False)
    for got, expected in zip(trained.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)
    assert float(trained.adaface.norm_mean) == pytest.approx(float(reference.adaface.norm_mean))


def test_tf_config_names_every_worker_and_this_task():
    assert tf_config("10.0.0.1:2222,10.0.0.2:2222", 1) == {
        "cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    with pytest.raises(ValueError, match="task_index=2"):
        tf_config("a:1,b:2", 2)
    with pytest.raises(ValueError, match="'a:b'"):
        parse_workers("a:b,c:1")
    with pytest.raises(ValueError, match="twice"):
        parse_workers("a:1,a:1")


def test_without_a_cluster_this_process_is_the_chief(tmp_path):
    assert is_chief()
    with worker_output_dir(tmp_path) as directory:
        assert directory == tmp_path
    assert tmp_path.exists()


def test_cli_refuses_bad_worker_flags(tmp_path, capsys):
    from catface_keras.cli.main import main

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    train = ["train", "--config", str(config_path), "--out", str(tmp_path / "out")]
    assert main([*train, "--workers", "127.0.0.1:1"]) == 2
    assert "--workers and --task-index go together" in capsys.readouterr().err
    assert main([*train, "--workers", "127.0.0.1:1,127.0.0.1:x", "--task-index", "0"]) == 2
    assert "'127.0.0.1:x'" in capsys.readouterr().err
    assert main([*train, "--workers", "127.0.0.1:1", "--task-index", "1"]) == 2
    assert "task_index=1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
