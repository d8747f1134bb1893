"""Distributed training: strategies, helpers for code inside a replica, multi-worker set-up.

Keras sums gradients over replicas, so a loss computed by hand inside
`train_step` must be divided by the replica count (Keras's own `compute_loss`
does the same). Statistics that must be identical on every replica are
summed over replicas before use. `make_strategy` builds the strategy a
config names; the multi-worker helpers build `TF_CONFIG` and decide which
process writes the run's files.
"""

import contextlib
import hashlib
import json
import os
import pathlib
import re
import shutil
import socket
import tempfile
import threading
import time

import keras
import tensorflow as tf


def num_replicas():
    """Replicas in sync under the current strategy (1 without a strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def scale_loss_for_replicas(loss):
    """Divides a per-replica mean loss so that summed gradients are a mean."""
    replicas = num_replicas()
    return loss if replicas == 1 else loss / tf.cast(replicas, loss.dtype)


def cross_replica_sum(value):
    """Sum of `value` over all replicas; `value` itself without a strategy.

    Must be called in a replica context (inside `train_step`), where every
    replica calls it in the same order.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


@keras.saving.register_keras_serializable(package="catface")
class CrossReplicaClipSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose `global_clipnorm` clips the summed gradient.

    Keras clips each replica's gradient before summing them over replicas,
    so clipped data-parallel training drifts from one device; this one
    measures the norm of the all-reduced gradient (one extra all-reduce,
    only while clipping with more than one replica) and scales every
    replica's part by the same factor. Same arguments as `SGD`.

    On TensorFlow the updates run as TensorFlow's fused training kernels
    (`ResourceApplyKerasMomentum`, `ResourceApplyGradientDescent` for the
    decoupled weight decay) and the norm as one `L2Loss` per gradient: the
    same arithmetic as Keras's SGD in 3 passes over each weight instead of
    about 10 element-wise ops, which took 4.5 % of an IR-18 stage-1 step's
    thread time under `mixed_bfloat16` on a 2-core CPU (the step ran 1.4 %
    faster fused). Nesterov momentum and sparse gradients keep Keras's update.
    """

    def _clip_gradients(self, grads):
        if not self.global_clipnorm or self.clipnorm or self.clipvalue:
            return super()._clip_gradients(grads)
        present = [g for g in grads if g is not None]
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            present = context.all_reduce(tf.distribute.ReduceOp.SUM, present)
        norm = tf.linalg.global_norm(present)
        clip = tf.cast(self.global_clipnorm, norm.dtype)
        # As Keras: a non-finite norm makes the scale NaN, so the step shows it.
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
        return [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or keras.backend.backend() != "tensorflow":
            return super()._apply_weight_decay(variables)

        def decay(variable, rate):
            if self._use_weight_decay(variable):
                tf.raw_ops.ResourceApplyGradientDescent(
                    var=variable.handle,
                    alpha=tf.cast(rate, variable.dtype),
                    delta=tf.convert_to_tensor(variable),
                )

        def apply(distribution, variables):
            # Once per step, not per weight: the learning rate evaluates its schedule.
            rate = self.learning_rate * self.weight_decay
            for variable in variables:
                if isinstance(variable, keras.Variable):
                    variable = variable.value
                distribution.extended.update(variable, decay, args=(rate,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            apply, self._distribution_strategy, variables
        )

    def update_step(self, gradient, variable, learning_rate):
        if self.nesterov or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        learning_rate = tf.cast(learning_rate, variable.dtype)
        gradient = tf.cast(gradient, variable.dtype)
        target = variable.value if isinstance(variable, keras.Variable) else variable
        if self.momentum == 0:
            tf.raw_ops.ResourceApplyGradientDescent(
                var=target.handle, alpha=learning_rate, delta=gradient
            )
            return
        momentum = self.momentums[self._get_variable_index(variable)].value
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=target.handle,
            accum=momentum.handle,
            lr=learning_rate,
            grad=gradient,
            momentum=tf.cast(self.momentum, variable.dtype),
        )


# === Strategies ===

# A worker whose peers died fails after this long instead of waiting forever.
COLLECTIVE_TIMEOUT_S = 600
_MULTI_WORKER_STRATEGY = None


def make_strategy(distribution):
    """The `tf.distribute` strategy named by `train.distribution`.

    `multi_worker` reads the cluster from `TF_CONFIG` (`catface train
    --workers ... --task-index I` writes it) and must be created before
    TensorFlow runs anything else in the process.
    """
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        # One per process (stage 1 then stage 2 share it): TensorFlow sets up
        # the cluster's collectives once, from the TF_CONFIG environment variable.
        if _MULTI_WORKER_STRATEGY is None:
            globals()["_MULTI_WORKER_STRATEGY"] = tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(
                    timeout_seconds=COLLECTIVE_TIMEOUT_S
                )
            )
        return _MULTI_WORKER_STRATEGY
    if distribution == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    raise ValueError(
        "`distribution` must be one of 'auto', 'none', 'mirrored', 'multi_worker'. "
        f"Received: distribution={distribution!r}"
    )


def build_for_strategy(model, strategy):
    """Builds the optimizer's variables now, in `strategy`'s scope.

    Works around two places where Keras 3.15's `fit` fails under
    `MultiWorkerMirroredStrategy`: it builds a model made under a strategy
    by averaging one input batch over workers (impossible for a dict of
    inputs; the stage models are built when constructed, so only the
    optimizer is left, built here instead), and it averages the step's
    logs over workers along axis 0 (scalars have none: they travel as
    `(1,)` tensors and come back scalars).
    """
    model.optimizer.build(model.trainable_variables)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def step_with_vector_logs(data, step=step):
            return {key: tf.reshape(value, [-1]) for key, value in step(data).items()}

        setattr(model, name, step_with_vector_logs)


# === Multi-worker training ===


def parse_workers(workers):
    """`"host:port,host:port"` -> `["host:port", ...]`, checked.

    Raises:
        ValueError: an entry is not `host:port` with a port in [1, 65535],
            or an address is listed twice.
    """
    addresses = [entry.strip() for entry in str(workers).split(",") if entry.strip()]
    if not addresses:
        raise ValueError(f"`--workers` must list host:port addresses. Received: workers={workers!r}")
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(
                "`--workers` entries must be host:port with a port in [1, 65535]. "
                f"Received: {address!r} in workers={workers!r}"
            )
    if len(set(addresses)) != len(addresses):
        raise ValueError(f"`--workers` lists an address twice. Received: workers={workers!r}")
    return addresses


def tf_config(workers, task_index):
    """The `TF_CONFIG` dict of worker `task_index` in a cluster of `workers`.

    Every process gets the same worker list and its own index; worker 0 is
    the chief (it writes the run's files).
    """
    addresses = parse_workers(workers) if isinstance(workers, str) else list(workers)
    if not isinstance(task_index, int) or not 0 <= task_index < len(addresses):
        raise ValueError(
            f"`--task-index` must be in [0, {len(addresses) - 1}] for {len(addresses)} "
            f"workers. Received: task_index={task_index!r}"
        )
    return {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": task_index}}


# How long a worker waits at start-up for the others before it gives up, naming them.
WORKER_START_TIMEOUT_S = 300
_HELLO = "catface-worker 1"
_REPLY_TIMEOUT_S = 5.0


class ClusterError(RuntimeError):
    """A multi-worker cluster that cannot start or lost a worker; the message names it."""


def _split_address(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _listen(port):
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("", port))


def wait_for_workers(workers, task_index, timeout_s=WORKER_START_TIMEOUT_S, poll_s=0.2):
    """Waits until every worker of the cluster has started, before TensorFlow's servers do.

    Each worker listens on its own port and says hello to every other one; it goes on
    once it has reached every peer and heard from every peer, then frees the port for
    TensorFlow. TensorFlow itself would wait for a missing peer without a word, for ever.

    Args:
        workers: the `--workers` list (a string or a list of `host:port`).
        task_index: this worker's position in it.
        timeout_s: how long to wait for the others.

    Raises:
        ClusterError: this worker's port is taken, a peer was started with another
            worker list, or peers are still missing after `timeout_s` (they are named).
    """
    addresses = parse_workers(workers) if isinstance(workers, str) else list(workers)
    tf_config(addresses, task_index)  # checks the index
    signature = hashlib.sha256(",".join(addresses).encode()).hexdigest()[:16]
    own = addresses[task_index]
    peers = set(range(len(addresses))) - {task_index}
    try:
        listener = _listen(_split_address(own)[1])
    except OSError as error:
        raise ClusterError(
            f"worker {task_index} cannot listen on {own}: {error.strerror or error} (is another "
            "process using the port? give this worker a free port in --workers)"
        ) from None
    hello = f"{_HELLO} {task_index} {signature}\n".encode()
    heard, problems, stop = set(), [], threading.Event()

    def answer():
        # Peers are answered from a thread, so that two workers saying hello to each
        # other at the same moment never wait on one another.
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue  # the poll timeout
            with connection:
                connection.settimeout(_REPLY_TIMEOUT_S)
                try:
                    said = _read_line(connection)
                    connection.sendall(hello)  # answered even when the lists differ
                    connection.recv(1)  # until the peer closes (TIME_WAIT stays on its side)
                except OSError:
                    continue
            try:
                heard.add(_check_hello(said, addresses, signature, task_index))
            except ClusterError as error:
                problems.append(error)

    listener.settimeout(poll_s)
    answering = threading.Thread(target=answer, name="catface-worker-hello", daemon=True)
    answering.start()
    reached = set()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for peer in sorted(peers - reached):
                try:
                    with socket.create_connection(_split_address(addresses[peer]), poll_s) as link:
                        link.sendall(hello)
                        link.settimeout(_REPLY_TIMEOUT_S)
                        reply = _read_line(link)
                except OSError:
                    continue  # not started yet: tried again
                if _check_hello(reply, addresses, signature, task_index) is not None:
                    reached.add(peer)
            if problems:
                raise problems[0]
            if reached == peers and peers <= heard:
                return
            if time.monotonic() > deadline:
                missing = sorted((peers - reached) | (peers - heard))
                raise ClusterError(
                    f"worker {task_index} ({own}) waited {timeout_s:g} s for worker(s) "
                    + ", ".join(f"{peer} ({addresses[peer]})" for peer in missing)
                    + ", which did not start (or cannot be reached). Start every worker with "
                    "the same --workers list and its own --task-index."
                )
            time.sleep(poll_s)
    finally:
        stop.set()
        answering.join()
        listener.close()


def _read_line(link):
    data = b""
    while not data.endswith(b"\n") and len(data) < 256:
        chunk = link.recv(256)
        if not chunk:
            break
        data += chunk
    return data


def _check_hello(data, addresses, signature, task_index):
    """The index of the worker that said `data`; None for anything but a catface worker.

    Raises:
        ClusterError: the peer was started with another worker list.
    """
    fields = data.decode("ascii", "replace").split()
    if len(fields) != 4 or " ".join(fields[:2]) != _HELLO or not fields[2].isdigit():
        return None
    peer = int(fields[2])
    if fields[3] != signature:
        name = addresses[peer] if peer < len(addresses) else f"index {peer}"
        raise ClusterError(
            f"worker {task_index}: worker {peer} ({name}) was started with another "
            "--workers list; give every worker the same list"
        )
    return peer


def describe_worker_failure(error, workers, task_index):
    """A one-line message for a TensorFlow error that ended multi-worker training, or None.

    TensorFlow names the peer it lost as `/job:worker/replica:0/task:N`; the message
    names that worker and its address.
    """
    if not isinstance(error, tf.errors.OpError):
        return None
    addresses = parse_workers(workers) if isinstance(workers, str) else list(workers)
    message = error.message or ""
    tasks = sorted({int(n) for n in re.findall(r"/job:worker(?:/replica:\d+)?/task:(\d+)",
                                               message)} - {task_index})
    tasks = [task for task in tasks if task < len(addresses)]
    # TensorFlow prefixes the op's function name in braces: not for people.
    summary = re.sub(r"\{\{.*?\}\}\s*", "", message).strip().splitlines()
    detail = f"{type(error).__name__}: {summary[0][:160] if summary else ''}"
    if tasks:
        lost = ", ".join(f"worker {task} ({addresses[task]})" for task in tasks)
        return (f"worker {task_index} lost contact with {lost}: it stopped or cannot be "
                f"reached ({detail}). Training stopped; start the workers again to resume.")
    return (f"worker {task_index}: the cluster failed, a peer probably stopped ({detail}). "
            "Training stopped; start the workers again to resume.")


def set_tf_config(workers, task_index):
    """Writes `TF_CONFIG` for this process (before the strategy is created)."""
    os.environ["TF_CONFIG"] = json.dumps(tf_config(workers, task_index))


def is_chief(strategy=None):
    """Whether this process writes checkpoints, metrics, models and exports.

    True without a multi-worker cluster; in one, true for the `chief` task or,
    when the cluster has none, for worker 0 (TensorFlow's convention).
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


@contextlib.contextmanager
def worker_output_dir(out_dir, strategy=None):
    """The directory this process writes into: `out_dir` on the chief.

    Every worker runs the same callbacks (they may hold collective ops), so
    non-chief workers write to a scratch directory beside nothing the user
    owns, deleted when the block ends, as TensorFlow's multi-worker guide does.
    """
    if is_chief(strategy):
        yield pathlib.Path(out_dir)
        return
    scratch = tempfile.mkdtemp(prefix="catface_worker_")
    try:
        yield pathlib.Path(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
