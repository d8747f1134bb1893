"""Round two, item 4: a multi-worker start that cannot complete ends with a message naming
the worker at fault, not a silent wait or a TensorFlow traceback."""

import socket
import threading

import pytest
import tensorflow as tf

from catface_keras.cli.main import main
from catface_keras.distribution import ClusterError, describe_worker_failure, wait_for_workers
from distribution.test_multi_worker import free_ports


def cluster(count):
    return ",".join(f"127.0.0.1:{port}" for port in free_ports(count))


def test_workers_that_all_start_meet_and_free_their_ports():
    workers = cluster(3)
    errors = []

    def worker(index):
        try:
            wait_for_workers(workers, index, timeout_s=30)
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    for address in workers.split(","):  # free for TensorFlow's servers
        with socket.create_server(("127.0.0.1", int(address.rpartition(":")[2]))):
            pass


def test_a_worker_whose_peer_never_starts_gives_up_naming_it():
    workers = cluster(3)
    missing = workers.split(",")[2]
    other = threading.Thread(target=lambda: pytest.raises(ClusterError, wait_for_workers,
                                                          workers, 1, timeout_s=2))
    other.start()
    # Before: TensorFlow waited for worker 2 for ever, without a word.
    with pytest.raises(ClusterError, match=rf"worker 0 \(.*\) waited 2 s for worker\(s\) 2 "
                                           rf"\({missing}\), which did not start"):
        wait_for_workers(workers, 0, timeout_s=2)
    other.join(10)


def test_a_port_in_use_is_named():
    workers = cluster(2)
    port = int(workers.split(",")[0].rpartition(":")[2])
    with socket.create_server(("127.0.0.1", port)):
        # Before: a TensorFlow traceback ("Address already in use") from the gRPC server.
        with pytest.raises(ClusterError, match=rf"worker 0 cannot listen on 127.0.0.1:{port}: "
                                               r".*in use"):
            wait_for_workers(workers, 0, timeout_s=2)


def test_workers_started_with_different_lists_are_told_so():
    workers = cluster(2)
    other = workers + ",127.0.0.1:1"  # worker 1 got a longer list
    thread = threading.Thread(target=lambda: pytest.raises(ClusterError, wait_for_workers,
                                                           other, 1, timeout_s=3))
    thread.start()
    with pytest.raises(ClusterError, match=r"worker 1 \(.*\) was started with another "
                                           r"--workers list"):
        wait_for_workers(workers, 0, timeout_s=3)
    thread.join(10)


def test_a_peer_lost_mid_run_is_named():
    workers = "10.0.0.1:2222,10.0.0.2:2222"
    # As TensorFlow 2.21 reports a peer killed mid-run (the survivor's own task named too).
    error = tf.errors.UnavailableError(
        None, None, "{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_"
        "/job:worker/replica:0/task:0/device:CPU:0}} Collective ops is aborted by: Error "
        "reported from /job:worker/task:1: The following tasks are unhealthy (stopped sending "
        "heartbeats):")
    message = describe_worker_failure(error, workers, 0)
    assert message.startswith("worker 0 lost contact with worker 1 (10.0.0.2:2222): it stopped")
    assert "function_node" not in message and "UnavailableError: Collective ops" in message
    assert describe_worker_failure(ValueError("not a cluster error"), workers, 0) is None


def test_the_cli_gives_up_on_a_missing_worker_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)  # set_tf_config writes it; restored after
    (tmp_path / "config.yaml").write_text("data:\n  source: synthetic\n")
    workers = cluster(2)
    code = main(["train", "--config", str(tmp_path / "config.yaml"), "--out",
                 str(tmp_path / "run"), "--workers", workers, "--task-index", "0",
                 "--worker-timeout", "1"])
    assert code == 2
    assert f"for worker(s) 1 ({workers.split(',')[1]}), which did not start" in (
        capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
