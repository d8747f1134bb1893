"""Throughput of LQ synthesis: images per second per CPU core, per family and for the mix.

Measures `catface_keras.degrade.degrade` two ways at 112 x 112:
- the `tf.data` path: `Dataset.map(degrade, num_parallel_calls=AUTOTUNE)` on batches, each
  batch seeded by its index, as the paired HQ/LQ pipeline does;
- the in-graph path: the `Degradation` layer called with `training=True` inside a
  `tf.function`, as on an accelerator (here on whatever device TensorFlow picks).

"Per core" is honest: the process is pinned to `--cores` CPUs (`sched_setaffinity`) and every
TensorFlow and tf.data thread pool is sized to `--cores`, then throughput is divided by it.
Prints one JSON line: `tf_data` and `layer` are wall-clock images/s divided by --cores,
`*_cpu_time` images per CPU-second of the process. Target: >= 1,000 images/s per core for the
mix on CPU.

    python benchmarks/degrade_throughput.py --cores 1
"""

import argparse
import json
import os
import platform
import sys
import time

from cpu_affinity import pin_to_cores

FAMILIES = {"turbulence": 1.0, "camera": 0.0, "mix": 0.5}
TARGET_MIX_PER_CORE = 1000.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to use (default: 1)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--size", type=int, default=112, help="image side (default: 112)")
    parser.add_argument("--batches", type=int, default=20,
                        help="timed batches per round, median of 3 rounds (default: 20)")
    parser.add_argument("--warmup", type=int, default=12,
                        help="untimed batches first, covering XLA compilation (default: 12)")
    parser.add_argument("--no-jit", action="store_true", help="run without XLA compilation")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="comma-separated subset of turbulence,camera,mix")
    return parser.parse_args(argv)


def images_per_second(step, images_per_step, warmup, steps, rounds=3):
    """`(wall, cpu)`: median images per wall-clock second and per CPU-second over `rounds`.

    The CPU-time rate (process user + system time, all threads) is per core by construction
    and immune to the machine's idle gaps; the wall-clock rate divided by --cores is what a
    training job sees.
    """
    for _ in range(warmup):
        step()
    wall_rates, cpu_rates = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        wall_rates.append(images_per_step * steps / (time.perf_counter() - wall))
        cpu_rates.append(images_per_step * steps / (time.process_time() - cpu))
    return sorted(wall_rates)[rounds // 2], sorted(cpu_rates)[rounds // 2]


def main(argv=None):
    args = parse_args(argv)
    pin_to_cores(args.cores)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.cores)
    tf.config.threading.set_inter_op_parallelism_threads(args.cores)

    from catface_keras import degrade

    hq = tf.random.stateless_uniform([args.batch, args.size, args.size, 3], [0, 0], 0, 255)
    base_seed = tf.constant([2024, 1], tf.int64)
    results = {"tf_data": {}, "layer": {}, "tf_data_cpu_time": {}, "layer_cpu_time": {}}
    for family in args.families.split(","):
        config = degrade.DegradationConfig(
            turbulence_fraction=FAMILIES[family], jit_compile=not args.no_jit
        )

        def degrade_batch(index, images, config=config):
            return degrade.degrade(images, degrade.element_seed(base_seed, index), config)

        dataset = (
            tf.data.Dataset.from_tensors(hq)
            .repeat()
            .enumerate()
            .map(degrade_batch, num_parallel_calls=tf.data.AUTOTUNE)
            .map(tf.reduce_sum)  # the consumer sees a scalar: no host copies timed
            .prefetch(2)
        )
        options = tf.data.Options()
        options.threading.private_threadpool_size = args.cores
        iterator = iter(dataset.with_options(options))
        wall, cpu = images_per_second(lambda: next(iterator), args.batch, args.warmup, args.batches)
        results["tf_data"][family] = round(wall / args.cores, 1)
        results["tf_data_cpu_time"][family] = round(cpu, 1)

        layer = degrade.Degradation(degradation_config=config, seed=7)

        @tf.function
        def layer_step(images, layer=layer):
            return tf.reduce_sum(layer(images, training=True))

        wall, cpu = images_per_second(
            lambda: layer_step(hq).numpy(), args.batch, args.warmup, args.batches
        )
        results["layer"][family] = round(wall / args.cores, 1)
        results["layer_cpu_time"][family] = round(cpu, 1)

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    mix = results["tf_data"].get("mix")
    print(
        json.dumps(
            {
                "benchmark": "degrade_throughput",
                "unit": "images/s/core",
                "image_size": args.size,
                "batch": args.batch,
                "cores": args.cores,
                "jit_compile": not args.no_jit,
                "layer_device": device,
                "cpu": platform.processor() or platform.machine(),
                "tensorflow": tf.__version__,
                **results,
                "target_mix_per_core": TARGET_MIX_PER_CORE,
                "mix_meets_target": None if mix is None else mix >= TARGET_MIX_PER_CORE,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
