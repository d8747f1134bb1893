"""The benchmark suite: img/s and fraction of the machine's GEMM peak, optionally beside PyTorch.

Measures, in one process and one run:
- `gemm_peak`: GFLOP/s of a large `tf.matmul` in float32 and bfloat16 (the peak
  the fractions below refer to, in the compute dtype of each measurement);
- `stage1`: the stage-1 paired step (IR-18, 112 px, 16 pairs = 32 images, both
  branches, distillation, AdaFace over 1,000 classes, the trainer's SGD);
- `stage2`: the stage-2 step (CATF fusion on a frozen stage 1);
- `backbone`: a plain IR-18 train step at batch 32 (softmax over 1,000 classes);
- `inference`: the stage-1 model on 64 images;
- `export`: the exported SavedModel at batch 1 and 64 (`export_latency.py`);
- `degrade`: the LQ synthesis mix per core (`degrade_throughput.py`).
With `--peer` (and torch installed) the same stage-1 step and plain IR-18 written in
PyTorch (`benchmarks/peers/`: float32, channels_last, bf16 autocast + channels_last)
run interleaved with ours, round by round; the best configuration is the peer and
`ratio` is our img/s over its. Fractions of peak count conv and dense FLOPs (a train
step as 3x the forward pass). Every entry carries the 1-minute load average before and
after it: the machine may be shared.

    python benchmarks/run.py --out results.json --peer
    python benchmarks/run.py --out /tmp/smoke.json --quick --peer
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FULL = {"backbone": "ir_18", "image_size": 112, "pairs": 16, "classes": 1000, "batch": 32,
        "gemm": 2048, "warmup": 2, "steps": 3, "rounds": 3}
QUICK = {"backbone": "ir_tiny", "image_size": 32, "pairs": 2, "classes": 10, "batch": 4,
         "gemm": 256, "warmup": 1, "steps": 1, "rounds": 1}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="JSON file to write")
    parser.add_argument("--peer", action="store_true", help="also time the PyTorch peer")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (smoke test)")
    parser.add_argument("--policy", default="auto",
                        help="Keras dtype policy for our steps (default: auto, as training)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (2)")
    parser.add_argument("--skip", default="", help="comma-separated entries to leave out")
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


def main(argv=None):
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("rounds", "steps", "warmup"):
        if getattr(args, key):
            sizes[key] = getattr(args, key)
    skip = set(filter(None, args.skip.split(",")))
    import keras
    import tensorflow as tf

    from catface_keras.precision import choose_dtype_policy

    policy = choose_dtype_policy(args.policy) or "float32"
    keras.config.set_dtype_policy(policy)
    compute = "bfloat16" if "bfloat16" in policy else "float16" if "float16" in policy else "float32"
    results = {
        "machine": {
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "policy": policy,
            "quick": args.quick,
            "sizes": sizes,
        }
    }
    # The best of a few sizes: small ones fit the caches, large ones amortise the threads.
    gemm_sizes = (sizes["gemm"] // 2, sizes["gemm"], sizes["gemm"] * 3 // 2)
    peaks = {
        dtype: round(max(gemm_gflops(dtype, n) for n in gemm_sizes), 1)
        for dtype in ("float32", "bfloat16")
    }
    results["gemm_peak_gflops"] = peaks
    peak = peaks.get(compute, peaks["float32"])

    import train_step

    ours = {}
    stage1, images, stage1_model = train_step.stage1_step(
        sizes["backbone"], sizes["image_size"], sizes["pairs"], sizes["classes"]
    )
    stage1_flops = 3 * forward_flops(stage1_model.network.feature_network)
    ours["stage1"] = (stage1, images, stage1_flops)
    if "backbone" not in skip:
        step, count, model = train_step.backbone_step(
            sizes["backbone"], sizes["image_size"], sizes["batch"], sizes["classes"]
        )
        ours["backbone"] = (step, count, 3 * forward_flops(model))

    peers = {}
    if args.peer:
        try:
            import torch

            from peers.torch_catface import CONFIGURATIONS, peer_steps
        except ImportError as error:
            results["peer_error"] = f"torch is not importable: {error}"
        else:
            torch.set_num_threads(len(os.sched_getaffinity(0)))
            for kind, size in (("stage1", sizes["pairs"]), ("backbone", sizes["batch"])):
                if kind not in ours:
                    continue
                for configuration in CONFIGURATIONS:
                    peers[(kind, configuration)] = peer_steps(
                        "stage1" if kind == "stage1" else "plain", size, sizes["image_size"],
                        sizes["classes"], configuration, sizes["backbone"],
                    )
            results["torch"] = torch.__version__

    # Interleaved rounds: ours, then each peer configuration, for every step kind.
    rounds = {}
    for _ in range(sizes["rounds"]):
        for kind, (step, count, flops) in ours.items():
            rounds.setdefault(("ours", kind), []).append(
                entry(step, count, sizes["warmup"], sizes["steps"], flops, peak)
            )
            for (peer_kind, configuration), (peer_step, peer_count) in peers.items():
                if peer_kind != kind:
                    continue
                peer_peak = peaks["bfloat16" if "bf16" in configuration else "float32"]
                rounds.setdefault((configuration, kind), []).append(
                    entry(peer_step, peer_count, 1, sizes["steps"], flops, peer_peak)
                )
    for kind in ours:
        results[kind] = {"ours": best_of_rounds(rounds[("ours", kind)]), "rounds": sizes["rounds"]}
        configurations = {c: best_of_rounds(r) for (c, k), r in rounds.items()
                          if k == kind and c != "ours"}
        if configurations:
            best = max(configurations, key=lambda c: configurations[c]["images_per_s"])
            results[kind]["peer"] = {"best": best, **configurations[best]}
            results[kind]["peer_configurations"] = configurations
            results[kind]["ratio"] = round(
                results[kind]["ours"]["images_per_s"] / configurations[best]["images_per_s"], 3
            )
            # CPU seconds per image: less sensitive to other jobs sharing the cores.
            least_cpu = min(c["cpu_s_per_step"] for c in configurations.values())
            results[kind]["ratio_cpu_time"] = round(
                least_cpu / results[kind]["ours"]["cpu_s_per_step"], 3
            )

    if "stage2" not in skip:
        step, count, _ = train_step.stage2_step(stage1_model, sizes["pairs"], sizes["classes"])
        results["stage2"] = {"ours": entry(step, count, sizes["warmup"], sizes["steps"])}
    if "inference" not in skip:
        batch = 64 if not args.quick else 4
        images64 = tf.random.uniform((batch, sizes["image_size"], sizes["image_size"], 3)) * 255
        infer = tf.function(lambda x: stage1_model.network(x, training=False))
        results["inference"] = {
            "ours": entry(lambda: infer(images64)["embedding"].numpy(), batch, sizes["warmup"],
                          sizes["steps"], forward_flops(stage1_model.network.feature_network), peak),
            "batch": batch,
        }
    if "export" not in skip:
        calls = ["--calls", "2", "--warmup", "1"] if args.quick else []
        results["export"] = {"load_before": load(),
                             **run_script([str(HERE / "export_latency.py"), *calls]),
                             "load_after": load()}
    if "degrade" not in skip:
        quick = ["--batches", "2", "--warmup", "2", "--batch", "8"] if args.quick else []
        cores = str(min(2, len(os.sched_getaffinity(0))))
        results["degrade"] = {"load_before": load(),
                              **run_script([str(HERE / "degrade_throughput.py"), "--cores", cores,
                                            "--families", "mix", *quick]),
                              "load_after": load()}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(args.out.suffix + ".partial")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(temporary, args.out)
    summary = {k: v for k, v in results.items() if k in ("gemm_peak_gflops",)}
    for kind in ("stage1", "backbone"):
        if kind in results:
            summary[kind] = {
                "ours_img_s": results[kind]["ours"]["images_per_s"],
                "ours_fraction_of_peak": results[kind]["ours"].get("fraction_of_peak"),
                "peer_img_s": results[kind].get("peer", {}).get("images_per_s"),
                "peer": results[kind].get("peer", {}).get("best"),
                "ratio": results[kind].get("ratio"),
                "ratio_cpu_time": results[kind].get("ratio_cpu_time"),
                "load": results[kind]["ours"]["load_before"],
            }
    print(json.dumps(summary, indent=1))
    return 0


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
