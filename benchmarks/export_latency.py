"""Serving latency of an exported model against the same network in process, batch 1 and 64.

Exports a model (`--model PATH.keras`, or by default a random-weight IR-18 stage-1 model at
112 px, `MultiBranchModel(backbone="ir_18", image_size=112)`) at each `--precisions` (as
`catface export --precision` does: `catface_keras.export.inference_graph.serving_model`,
batch norms folded unless `--no-fold`) to a temporary directory, loads it back with
`tf.saved_model.load` and times its `serving_default` signature on uint8 faces, as TF
Serving calls it, against the in-process network at the same precision
(`model_at_precision`, unfolded, `predict_on_batch` on float32 faces: what `catface
evaluate` runs). They are called in turn, a block of calls each (`median_latency_ms`), so
that load from other jobs hits all alike. Each timing is the median of `--calls` steady-state
calls after `--warmup` untimed ones, in
wall-clock and in process CPU milliseconds (`*_cpu_ms`, the cost of a call whatever else
shares the machine); `exported_over_in_process` is the ratio of the wall-clock medians
(1.0: as fast; 1.1: 10 % slower), `exported_over_in_process_cpu` that of the CPU medians
(the one to read on a loaded machine). With onnxruntime installed (`.[onnx]`), the float32
export is also written as ONNX (`catface export --format onnx`) and run by ONNX Runtime on
the same cores, the inference peer: `exported_over_onnxruntime_*` (1.0 or less: our
SavedModel at least as fast; `--no-onnx` skips it). `--bytes` also times `serving_bytes` on JPEG strings
(decoding included). The process is pinned to `--cores` CPUs (default 2) and the
TensorFlow thread pools are sized to match.

Prints one JSON line; `load_average_before`/`after` are the 1/5/15-minute load averages that
`uptime` shows, since other jobs may share the CPU.

    python benchmarks/export_latency.py
    python benchmarks/export_latency.py --model runs/demo/stage1.keras --calls 50
    python benchmarks/export_latency.py --precisions float32 --no-fold   # the export of before
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
    parser.add_argument("--calls", type=int, default=15,
                        help="timed calls per signature and batch size, in 5 blocks "
                        "(default: 15)")
    parser.add_argument("--precisions", default="float32,auto", metavar="LIST",
                        help="comma-separated precisions among auto, float32, bfloat16, float16 "
                        "(default: float32,auto)")
    parser.add_argument("--no-fold", action="store_true",
                        help="export without folding the batch norms (as before they were)")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip the ONNX Runtime peer (float32 only)")
    parser.add_argument("--bytes", action="store_true",
                        help="also time the serving_bytes signature on JPEG strings")
    return parser.parse_args(argv)


def median_latency_ms(calls_by_name, warmup, calls, rounds=5):
    """`{name: (wall, cpu)}`: median wall-clock and process CPU milliseconds per call.

    Each callable is called `warmup` untimed times, then the timed calls run in `rounds`
    blocks, the callables taking turns block by block (so that a change of load hits all
    alike), each block opened by one untimed call. Blocks, not single calls in turn: ONNX
    Runtime's worker threads spin for a while after a call (its fastest setting, the
    default), and a TensorFlow call made right after one shares the cores with them (on
    2 cores it measured 31.5 ms instead of 22.5). The CPU time (all threads) is what a call
    costs whatever else runs on the machine; the wall time is what a client waits, and grows
    when other jobs share the cores.
    """
    for call in calls_by_name.values():
        for _ in range(warmup):
            call()
    wall = {name: [] for name in calls_by_name}
    cpu = {name: [] for name in calls_by_name}
    sizes = [calls // rounds + (index < calls % rounds) for index in range(rounds)]
    for size in (size for size in sizes if size):
        for name, call in calls_by_name.items():
            call()
            for _ in range(size):
                started, started_cpu = time.perf_counter(), time.process_time()
                call()
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
    return {
        name: (round(1000 * statistics.median(wall[name]), 2),
               round(1000 * statistics.median(cpu[name]), 2))
        for name in calls_by_name
    }


def onnxruntime_session(model, directory, cores):
    """An ONNX Runtime session of `model` exported as `catface export --format onnx`
    writes it, on `cores` threads; None where onnxruntime is not installed."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    from catface_keras.export.onnx import export_onnx

    path = os.path.join(directory, "model.onnx")
    export_onnx(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cores
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main(argv=None):
    args = parse_args(argv)
    pin_to_cores(args.cores)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = [round(value, 2) for value in os.getloadavg()]
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.cores)
    tf.config.threading.set_inter_op_parallelism_threads(args.cores)

    from catface_keras.export import export_saved_model
    from catface_keras.export.inference_graph import serving_model
    from catface_keras.models.inference_precision import model_at_precision, resolve_precision
    from catface_keras.models.loading import load_model
    from catface_keras.models.multibranch import MultiBranchModel

    if args.model:
        model = load_model(args.model, allow_embedder=True)
        description = args.model
    else:
        model = MultiBranchModel(backbone="ir_18", image_size=112)
        description = "ir_18 stage 1, 112 px, random weights"
    precisions = [name.strip() for name in args.precisions.split(",") if name.strip()]
    result = {"model": description, "fold_batch_norms": not args.no_fold}
    rng = np.random.default_rng(0)
    faces = {batch: rng.integers(0, 256, (batch, 112, 112, 3), dtype=np.uint8)
             for batch in BATCH_SIZES}
    for requested in precisions:
        precision = resolve_precision(requested)
        network = model_at_precision(model, precision)
        exported = serving_model(network, precision, fold=not args.no_fold)
        entry = {"requested": requested}
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            path = export_saved_model(exported, os.path.join(scratch, "catface"))
            entry["export_s"] = round(time.perf_counter() - started, 1)
            loaded = tf.saved_model.load(str(path))
            default = loaded.signatures["serving_default"]
            from_bytes = loaded.signatures["serving_bytes"]
            session = None
            if precision == "float32" and not args.no_onnx:
                session = onnxruntime_session(exported, scratch, args.cores)
                entry["onnxruntime"] = session is not None
            for batch in BATCH_SIZES:
                images = tf.constant(faces[batch])
                floats = faces[batch].astype(np.float32)
                calls = {
                    "exported": lambda: default(images=images),
                    "in_process": lambda: network.predict_on_batch(floats),
                }
                if session is not None:
                    input_name = session.get_inputs()[0].name
                    calls["onnxruntime"] = lambda: session.run(None, {input_name: floats})
                if args.bytes:
                    encoded = tf.constant(
                        [tf.io.encode_jpeg(face, quality=90).numpy() for face in faces[batch]]
                    )
                    calls["exported_bytes"] = lambda: from_bytes(image_bytes=encoded)
                timings = median_latency_ms(calls, args.warmup, args.calls)
                for name, (wall, cpu) in timings.items():
                    entry[f"{name}_batch_{batch}_ms"] = wall
                    entry[f"{name}_batch_{batch}_cpu_ms"] = cpu
                entry[f"exported_batch_{batch}_images_per_s"] = round(
                    1000 * batch / timings["exported"][0], 1
                )
                peers = ("in_process", "onnxruntime") if session is not None else ("in_process",)
                for peer in peers:
                    for index, kind in enumerate(("", "cpu_")):
                        entry[f"exported_over_{peer}_{kind}batch_{batch}"] = round(
                            timings["exported"][index] / timings[peer][index], 3
                        )
        entry["load_average"] = [round(value, 2) for value in os.getloadavg()]
        result[precision] = entry
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
