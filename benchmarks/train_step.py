"""Steady-state stage-1 train step time (the paired HQ/LQ step of `MultiBranchModel`).

Feeds one fixed in-memory batch, so that input threads do not compete with
compute, warms up (tracing), then times `--steps` steps. Prints one JSON line.

    python benchmarks/train_step.py --backbone ir_18 --image-size 112 --batch 32
    python benchmarks/train_step.py --backbone ir_tiny --image-size 48 --batch 64 --policy float32
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from catface_keras.models.multibranch import MultiBranchModel  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ir_18")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32, help="pairs per step (2x images)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--policy", default="float32", help="Keras dtype policy")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    keras.config.set_dtype_policy(args.policy)
    model = MultiBranchModel(args.classes, backbone=args.backbone, image_size=args.image_size)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, weight_decay=5e-4))
    shape = (args.batch, args.image_size, args.image_size, 3)
    inputs = {"hq": tf.random.uniform(shape) * 255, "lq": tf.random.uniform(shape) * 255}
    targets = {
        "identity": tf.random.uniform((args.batch,), 0, args.classes, tf.int32),
        "attributes": tf.random.uniform((args.batch, 5), 0, 2, tf.int32),
    }
    for _ in range(args.warmup):
        model.train_on_batch(inputs, targets)
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        model.train_on_batch(inputs, targets)
        times.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "backbone": args.backbone,
                "image_size": args.image_size,
                "pairs_per_step": args.batch,
                "policy": args.policy,
                "median_step_s": round(statistics.median(times), 4),
                "min_step_s": round(min(times), 4),
                "images_per_s": round(2 * args.batch / statistics.median(times), 1),
                "cpu_count": os.cpu_count(),
                "machine": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
