"""The benchmark suite: img/s and fraction of the machine's GEMM peak, optionally beside PyTorch.

Measures, in one process and one run, on the GPU when there is one (else the CPU):
- `gemm_peak_gflops`: a large matmul in each compute dtype (the peak the fractions
  below refer to);
- `stage1`: the stage-1 paired step (both branches, distillation, AdaFace, the
  trainer's SGD) for each backbone and batch of pairs: on a GPU IR-18 and IR-50 at
  112 px, 128 and 512 pairs (`--pairs`); on a CPU IR-18, 16 pairs. Ours in the Keras
  policy `auto` picks (`mixed_float16` on a GPU, `mixed_bfloat16` on CPUs with
  native bf16, else float32), with and without XLA (`jit_compile`; `catface train`
  uses Keras's `auto`: XLA on a GPU);
- `backbone`: a plain iResNet train step (softmax over the classes);
- `stage2`, `inference`, `export`, `degrade` as before (`export_latency.py`,
  `degrade_throughput.py`);
- `input_pipeline`: `catface train`'s input pipeline alone on the host's cores
  (read JPEG files, decode, degrade, pair; `training_loop.input_pipeline_rate`).
With `--peer` (and torch installed) the same steps in PyTorch (`benchmarks/peers/`):
on CUDA AMP float16 + channels_last, with and without `torch.compile`; on a CPU
float32, channels_last and bf16 autocast (compiled too with `--peer-compile`).
Variants run interleaved, round by round; `ratio` is our best img/s over the
peer's best. An entry that fails (out of memory, an op XLA lacks) records its
error and the run goes on; `--budget-s` (default 600 on a GPU) skips what would
start after it. Every entry carries the 1-minute load average before and after it.

    python benchmarks/run.py --out results.json --peer
    python benchmarks/run.py --out /tmp/smoke.json --quick --peer   # tiny, CPU, ~1 min
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CPU = {"backbones": ["ir_18"], "pairs": [16], "image_size": 112, "classes": 1000, "batch": 32,
       "gemm": 2048, "warmup": 2, "steps": 3, "rounds": 3, "pipeline_images": 512,
       "pipeline_batches": 8}
# Each shape compiles once with XLA and torch.compile (tens of seconds each): two batch
# sizes per backbone keep the run near 10 minutes; --pairs 128,256,512 for all three.
GPU = {"backbones": ["ir_18", "ir_50"], "pairs": [128, 512], "image_size": 112,
       "classes": 1000, "batch": 256, "gemm": 8192, "warmup": 3, "steps": 10, "rounds": 1,
       "pipeline_images": 2048, "pipeline_batches": 8}
QUICK = {"backbones": ["ir_tiny"], "pairs": [2], "image_size": 32, "classes": 10, "batch": 4,
         "gemm": 256, "warmup": 1, "steps": 1, "rounds": 1, "pipeline_images": 64,
         "pipeline_batches": 2}
# The pipeline's pairs per batch: the training batch of the sizes (capped by the images).
PIPELINE_PAIRS = {"quick": 4, "cpu": 16, "gpu": 256}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="JSON file to write")
    parser.add_argument("--peer", action="store_true", help="also time the PyTorch peer")
    parser.add_argument("--peer-compile", action="store_true",
                        help="on a CPU, also time the peer through torch.compile (always on CUDA)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny model and batch, one step: a smoke test that runs on a CPU")
    parser.add_argument("--policy", default="auto",
                        help="Keras dtype policy for our steps (default: auto, as training)")
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both",
                        help="our stage-1 step with XLA, without, or both (default)")
    parser.add_argument("--backbones", default=None, help="comma-separated, e.g. ir_18,ir_50")
    parser.add_argument("--pairs", default=None, help="comma-separated pairs per step")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="skip entries that would start after this many seconds "
                        "(default: 600 on a GPU, none on a CPU)")
    parser.add_argument("--skip", default="", help="comma-separated entries to leave out: "
                        "backbone, stage2, inference, export, degrade, input_pipeline")
    return parser.parse_args(argv)


def load():
    return round(os.getloadavg()[0], 2)


def gemm_gflops(dtype, n, repeats=10):
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32)))
    matmul()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        matmul().numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def forward_flops(model):
    """FLOPs of one image's forward pass: convolutions, dense layers, self-attention."""
    import keras

    from catface_keras.layers.self_attention import SelfAttention2D

    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            total += 2 * height * width * int(layer.kernel.numpy().size)
        elif isinstance(layer, SelfAttention2D):
            tokens = layer.query_dense.kernel.shape[0]  # channels C
            key = layer.query_dense.kernel.shape[1]
            positions = layer._build_shapes_dict["input_shape"][1] * \
                layer._build_shapes_dict["input_shape"][2]
            total += 2 * positions * tokens * (2 * key + tokens)
            total += 2 * positions * positions * (key + tokens)
        elif isinstance(layer, keras.layers.Dense) and not _inside_attention(layer, model):
            total += 2 * int(layer.kernel.shape[0] * layer.kernel.shape[1])
    return total


def _inside_attention(layer, model):
    return layer.name in ("query", "key", "value")


def entry(step_fn, images, warmup, steps, flops_per_image=None, peak=None):
    from train_step import time_steps

    before = load()
    wall, cpu = time_steps(step_fn, warmup, steps)
    result = {
        "images_per_s": round(images / wall, 2),
        "step_s": round(wall, 4),
        "cpu_s_per_step": round(cpu, 4),
        "load_before": before,
        "load_after": load(),
    }
    if flops_per_image and peak:
        result["gflops"] = round(flops_per_image * images / wall / 1e9, 1)
        result["fraction_of_peak"] = round(flops_per_image * images / wall / 1e9 / peak, 3)
    return result


def best_of_rounds(rounds):
    """The round with the highest throughput (least disturbed by other jobs)."""
    return max(rounds, key=lambda r: r["images_per_s"])


def run_script(arguments):
    """Runs another benchmark script, returns its JSON line."""
    completed = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent),
                                                           os.environ.get("PYTHONPATH", "")])},
        timeout=1800,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _sizes(args, gpu):
    sizes = dict(QUICK if args.quick else GPU if gpu else CPU)
    for key in ("rounds", "steps", "warmup"):
        if getattr(args, key):
            sizes[key] = getattr(args, key)
    if args.backbones:
        sizes["backbones"] = [name.strip() for name in args.backbones.split(",") if name.strip()]
    if args.pairs:
        sizes["pairs"] = [int(value) for value in args.pairs.split(",")]
    return sizes


class Budget:
    """Seconds left of `--budget-s` (None: no limit)."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.started = time.perf_counter()

    def spent(self):
        return self.seconds is not None and time.perf_counter() - self.started > self.seconds


def log(message):
    """A progress line on stderr (stdout carries the summary)."""
    print(f"[run.py {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _attempt(function):
    """`function()`, or `{"error": ...}` when it raises (out of memory, an op XLA lacks)."""
    try:
        return function()
    except Exception as error:  # noqa: BLE001  one failed entry must not lose the others
        return {"error": f"{type(error).__name__}: {str(error)[:500]}"}


def _release(device_is_cuda):
    import gc

    import keras

    # `clear_session` also resets the global dtype policy to float32: every entry
    # timed after the first release ran in float32 until this put it back.
    policy = keras.config.dtype_policy()
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)
    gc.collect()
    if device_is_cuda:
        import torch

        torch.cuda.empty_cache()


def time_variants(variants, sizes, budget):
    """Times each `name -> build()` (build returns `(step, images, flops, peak)`), the
    variants interleaved round by round; `{name: best round's entry or {"error"}}`."""
    built, results = {}, {}
    for name, build in variants.items():
        if budget.spent():
            results[name] = {"skipped": "time budget spent"}
            continue
        log(f"building {name}")
        made = _attempt(lambda: {"made": build()})
        if "error" in made:
            results[name] = made
        else:
            built[name] = made["made"]
    rounds = {}
    for round_index in range(sizes["rounds"]):
        for name, (step, images, flops, peak) in built.items():
            if name in results or (round_index and budget.spent()):
                continue
            warmup = sizes["warmup"] if round_index == 0 else 1
            log(f"timing {name}, round {round_index + 1}")
            timed = _attempt(lambda: entry(step, images, warmup, sizes["steps"], flops, peak))
            if "error" in timed:
                results[name] = timed
            else:
                rounds.setdefault(name, []).append(timed)
    for name, timed in rounds.items():
        results.setdefault(name, {**best_of_rounds(timed), "rounds": len(timed)})
    return results


def _compare(variants, peer_names):
    """`{"variants", "ours", "peer", "ratio", "ratio_cpu_time"}` of one step kind."""
    timed = {name: value for name, value in variants.items() if "images_per_s" in value}
    ours = {name: value for name, value in timed.items() if name not in peer_names}
    peers = {name: value for name, value in timed.items() if name in peer_names}
    summary = {"variants": variants}
    if ours:
        best = max(ours, key=lambda name: ours[name]["images_per_s"])
        summary["ours"] = {"best": best, **ours[best]}
    if peers:
        best = max(peers, key=lambda name: peers[name]["images_per_s"])
        summary["peer"] = {"best": best, **peers[best]}
    if ours and peers:
        summary["ratio"] = round(summary["ours"]["images_per_s"] / summary["peer"]["images_per_s"], 3)
        # CPU seconds per step: less sensitive to other jobs sharing the cores (CPU runs).
        summary["ratio_cpu_time"] = round(
            min(p["cpu_s_per_step"] for p in peers.values())
            / max(summary["ours"]["cpu_s_per_step"], 1e-9), 3)
    return summary


def _peer_setup(args, results):
    """`(configuration names, torch device)` or `([], None)` without `--peer` or torch."""
    if not args.peer:
        return [], None
    try:
        import torch

        from peers.torch_catface import device_configurations
    except ImportError as error:
        results["peer_error"] = f"torch is not importable: {error}"
        return [], None
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    results["torch"] = torch.__version__
    return device_configurations(cuda, compile=cuda or args.peer_compile), ("cuda" if cuda else "cpu")


def input_pipeline_entry(sizes, profile):
    """`catface train`'s input pipeline alone: JPEG files -> decode, degrade, pair."""
    import training_loop

    pairs = min(PIPELINE_PAIRS[profile], sizes["pipeline_images"] // 2)
    with tempfile.TemporaryDirectory() as scratch:
        folder = training_loop.write_faces(pathlib.Path(scratch, "faces"),
                                           sizes["pipeline_images"], sizes["image_size"])
        config = training_loop.experiment(folder, sizes["backbones"][0], sizes["image_size"],
                                          pairs)
        before = load()
        rate, _ = training_loop.input_pipeline_rate(config, sizes["pipeline_batches"], warmup=1)
    return {"images_per_s": round(rate, 1), "pairs_per_batch": pairs,
            "host_cores": len(os.sched_getaffinity(0)), "load_before": before,
            "load_after": load()}


def main(argv=None):
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    import keras
    import tensorflow as tf

    from catface_keras.precision import choose_dtype_policy

    gpu = bool(tf.config.list_physical_devices("GPU"))
    profile = "quick" if args.quick else "gpu" if gpu else "cpu"
    sizes = _sizes(args, gpu)
    budget = Budget(args.budget_s if args.budget_s is not None else (600 if gpu else None))
    policy = choose_dtype_policy(args.policy) or "float32"
    keras.config.set_dtype_policy(policy)
    compute = "bfloat16" if "bfloat16" in policy else "float16" if "float16" in policy else "float32"
    results = {
        "machine": {
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "gpu": [tf.config.experimental.get_device_details(device).get("device_name", device.name)
                    for device in tf.config.list_physical_devices("GPU")],
            "device": "gpu" if gpu else "cpu",
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "policy": policy,
            "quick": args.quick,
            "profile": profile,
            "sizes": sizes,
        }
    }
    # The best of a few sizes: small ones fit the caches, large ones amortise the threads.
    gemm_sizes = (sizes["gemm"] // 2, sizes["gemm"], sizes["gemm"] * 3 // 2)
    dtypes = ("float32", "float16", "bfloat16") if gpu else ("float32", "bfloat16")
    log("GEMM peak")
    peaks = {
        dtype: round(max(gemm_gflops(dtype, n) for n in gemm_sizes), 1) for dtype in dtypes
    }
    results["gemm_peak_gflops"] = peaks
    peak = peaks.get(compute, peaks["float32"])
    peer_names, peer_device = _peer_setup(args, results)
    cuda = peer_device == "cuda"

    # First: it is short, and on a GPU the budget may run out in the steps below.
    if "input_pipeline" not in skip:
        log("input pipeline")
        results["input_pipeline"] = _attempt(lambda: input_pipeline_entry(sizes, profile))

    import train_step

    xla = {"both": (False, True), "on": (True,), "off": (False,)}[args.xla]
    results["stage1"] = {}
    stage1_model = None
    flops = {}  # per-image FLOPs of our networks, which the peer's copy shares
    for backbone in sizes["backbones"]:
        for pairs in sizes["pairs"]:
            def ours(jit_compile, backbone=backbone, pairs=pairs):
                nonlocal stage1_model
                step, images, model = train_step.stage1_step(
                    backbone, sizes["image_size"], pairs, sizes["classes"], jit_compile)
                stage1_model = stage1_model or model
                flops[backbone] = 3 * forward_flops(model.network.feature_network)
                return step, images, flops[backbone], peak

            variants = {("keras_xla" if jit else "keras"): (lambda jit=jit: ours(jit))
                        for jit in xla}
            for name in peer_names:
                variants[name] = (lambda name=name, backbone=backbone, pairs=pairs: _peer_build(
                    "stage1", pairs, sizes, name, backbone, peer_device, peaks,
                    flops.get(backbone)))
            key = f"{backbone}/{pairs}_pairs"
            log(f"stage 1 {key}")
            results["stage1"][key] = {"backbone": backbone, "pairs": pairs,
                                      **_compare(time_variants(variants, sizes, budget),
                                                 peer_names)}
            _release(cuda)

    backbone, image_size = sizes["backbones"][0], sizes["image_size"]
    if "backbone" not in skip:
        def plain():
            step, count, model = train_step.backbone_step(
                backbone, image_size, sizes["batch"], sizes["classes"])
            flops["plain"] = 3 * forward_flops(model)
            return step, count, flops["plain"], peak

        variants = {"keras": plain}
        for name in peer_names:
            variants[name] = (lambda name=name: _peer_build(
                "plain", sizes["batch"], sizes, name, backbone, peer_device, peaks,
                flops.get("plain")))
        results["backbone"] = {"backbone": backbone, "batch": sizes["batch"],
                               "policy": keras.config.dtype_policy().name,
                               **_compare(time_variants(variants, sizes, budget), peer_names)}
        _release(cuda)

    if stage1_model is None:  # every stage-1 variant failed: build one for what follows
        stage1_model = train_step.stage1_step(backbone, image_size, sizes["pairs"][0],
                                              sizes["classes"])[2]
    pairs = sizes["pairs"][0]
    if "stage2" not in skip and not budget.spent():
        def stage2():
            step, count, _ = train_step.stage2_step(stage1_model, pairs, sizes["classes"])
            return entry(step, count, sizes["warmup"], sizes["steps"])

        results["stage2"] = {"ours": _attempt(stage2), "pairs": pairs,
                             "policy": keras.config.dtype_policy().name}
    if "inference" not in skip and not budget.spent():
        batch = 4 if args.quick else 256 if gpu else 64
        images = tf.random.uniform((batch, image_size, image_size, 3)) * 255
        infer = tf.function(lambda x: stage1_model.network(x, training=False))
        results["inference"] = {
            "ours": _attempt(lambda: entry(
                lambda: infer(images)["embedding"].numpy(), batch, sizes["warmup"],
                sizes["steps"], forward_flops(stage1_model.network.feature_network), peak)),
            "batch": batch,
            "policy": keras.config.dtype_policy().name,
        }
    log("stage 2, inference, export, degrade")
    if "export" not in skip and not budget.spent():
        calls = ["--calls", "2", "--warmup", "1"] if args.quick else []
        results["export"] = {"load_before": load(),
                             **run_script([str(HERE / "export_latency.py"), *calls]),
                             "load_after": load()}
    if "degrade" not in skip and not budget.spent():
        quick = ["--batches", "2", "--warmup", "2", "--batch", "8"] if args.quick else []
        cores = str(min(2, len(os.sched_getaffinity(0))))
        results["degrade"] = {"load_before": load(),
                              **run_script([str(HERE / "degrade_throughput.py"), "--cores", cores,
                                            "--families", "mix", *quick]),
                              "load_after": load()}
    results["seconds"] = round(time.perf_counter() - budget.started, 1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(args.out.suffix + ".partial")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(temporary, args.out)
    print(json.dumps(_summary(results), indent=1))
    return 0


def _peer_build(kind, size, sizes, name, backbone, device, peaks, flops):
    from peers.torch_catface import peer_steps

    step, images = peer_steps(kind, size, sizes["image_size"], sizes["classes"], name, backbone,
                              device=device)
    dtype = "float16" if "fp16" in name else "bfloat16" if "bf16" in name else "float32"
    return step, images, flops, peaks.get(dtype, peaks["float32"])


def _summary(results):
    summary = {"gemm_peak_gflops": results["gemm_peak_gflops"], "seconds": results["seconds"]}
    kinds = {f"stage1 {key}": value for key, value in results["stage1"].items()}
    if "backbone" in results:
        kinds["backbone"] = results["backbone"]
    for name, value in kinds.items():
        summary[name] = {
            "ours": value.get("ours", {}).get("best"),
            "ours_img_s": value.get("ours", {}).get("images_per_s"),
            "peer": value.get("peer", {}).get("best"),
            "peer_img_s": value.get("peer", {}).get("images_per_s"),
            "ratio": value.get("ratio"),
        }
    if isinstance(results.get("input_pipeline"), dict):
        summary["input_pipeline_img_s"] = results["input_pipeline"].get("images_per_s")
    return summary


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
