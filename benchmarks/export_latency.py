"""Serving latency of an exported model: batch 1 and batch 64, after `tf.saved_model.load`.

Exports a model (`--model PATH.keras`, or by default a random-weight IR-18 stage-1 model at
112 px, `MultiBranchModel(backbone="ir_18", image_size=112)`) to a temporary
directory with `catface_keras.export`, loads it back with `tf.saved_model.load` and times its
signatures as TF Serving calls them: `serving_default` on uint8 faces and `serving_bytes` on
JPEG strings (decoding included). Each timing is the median of `--calls` steady-state calls
after `--warmup` untimed ones, in wall-clock and in process CPU milliseconds (`*_cpu_ms`, the
cost of a call whatever else shares the machine). The process is pinned to `--cores` CPUs
(default 2) and the TensorFlow thread pools are sized to match.

Prints one JSON line; `load_average_before`/`after` are the 1/5/15-minute load averages that
`uptime` shows, since other jobs may share the CPU.

    python benchmarks/export_latency.py
    python benchmarks/export_latency.py --model runs/demo/stage1.keras --calls 50
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

from cpu_affinity import pin_to_cores

BATCH_SIZES = (1, 64)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, metavar="PATH.keras",
                        help="model to export (default: random-weight IR-18 stage 1, 112 px)")
    parser.add_argument("--cores", type=int, default=2, help="CPU cores to use (default: 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default: 3)")
    parser.add_argument("--calls", type=int, default=10,
                        help="timed calls per signature and batch size (default: 10)")
    return parser.parse_args(argv)


def median_latency_ms(call, warmup, calls):
    """`(wall, cpu)`: median wall-clock and process CPU milliseconds per call.

    The CPU time (all threads) is what a call costs whatever else runs on the machine; the
    wall time is what a client waits, and grows when other jobs share the cores.
    """
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(calls):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return round(1000 * statistics.median(wall), 2), round(1000 * statistics.median(cpu), 2)


def main(argv=None):
    args = parse_args(argv)
    pin_to_cores(args.cores)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = [round(value, 2) for value in os.getloadavg()]
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.cores)
    tf.config.threading.set_inter_op_parallelism_threads(args.cores)

    from catface_keras.models.loading import load_model
    from catface_keras.export import export_saved_model
    from catface_keras.models.multibranch import MultiBranchModel

    if args.model:
        model = load_model(args.model)
        description = args.model
    else:
        model = MultiBranchModel(backbone="ir_18", image_size=112)
        description = "ir_18 stage 1, 112 px, random weights"
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        path = export_saved_model(model, os.path.join(scratch, "catface"))
        export_s = time.perf_counter() - started
        loaded = tf.saved_model.load(str(path))
        rng = np.random.default_rng(0)
        result = {"model": description, "export_s": round(export_s, 1)}
        for batch in BATCH_SIZES:
            faces = rng.integers(0, 256, (batch, 112, 112, 3), dtype=np.uint8)
            images = tf.constant(faces)
            encoded = tf.constant([tf.io.encode_jpeg(face, quality=90).numpy() for face in faces])
            default = loaded.signatures["serving_default"]
            from_bytes = loaded.signatures["serving_bytes"]
            wall, cpu = median_latency_ms(lambda: default(images=images), args.warmup, args.calls)
            result[f"batch_{batch}_ms"] = wall
            result[f"batch_{batch}_cpu_ms"] = cpu
            result[f"batch_{batch}_images_per_s"] = round(1000 * batch / wall, 1)
            wall, cpu = median_latency_ms(
                lambda: from_bytes(image_bytes=encoded), args.warmup, args.calls
            )
            result[f"bytes_batch_{batch}_ms"] = wall
            result[f"bytes_batch_{batch}_cpu_ms"] = cpu
    result.update(
        cores=args.cores,
        calls=args.calls,
        load_average_before=load_before,
        load_average_after=[round(value, 2) for value in os.getloadavg()],
        cpu_count=os.cpu_count(),
        machine=platform.processor() or platform.machine(),
        tensorflow=tf.__version__,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
