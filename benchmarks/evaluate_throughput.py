"""Throughput of evaluation feature extraction: flip-fused embeddings per second.

Times `catface_keras.evaluation.features.extract_features` (each image and its
mirror image through the model, summed, L2-normalised) on random 112 x 112
images with an untrained IR-18 stage-1 model, as `catface evaluate` runs it on
an LFW-sized `.bin` (12,000 images). `--images N` times N images and
extrapolates to `--target`; one untimed batch goes first (graph building,
memory allocation). Prints one JSON line: wall-clock images/s (what a user
waits for), images per CPU-second of the process (all threads; less
sensitive to other jobs on the machine) and the 1/5/15-minute load average
at the end of the run, because the measurement shares the CPU.

    python benchmarks/evaluate_throughput.py --images 512
"""

import argparse
import json
import os
import platform
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12_000,
                        help="images to time (default: 12000, an LFW .bin)")
    parser.add_argument("--target", type=int, default=12_000,
                        help="image count to extrapolate the time to (default: 12000)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per call (default: 64)")
    parser.add_argument("--backbone", default="ir_18", help="iResNet preset (default: ir_18)")
    parser.add_argument("--size", type=int, default=112, help="image side (default: 112)")
    args = parser.parse_args(argv)
    if args.images < 1 or args.target < 1 or args.batch_size < 1:
        parser.error("--images, --target and --batch-size must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from catface_keras.evaluation.features import extract_features
    from catface_keras.models.multibranch import MultiBranchModel

    model = MultiBranchModel(backbone=args.backbone, image_size=args.size)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, args.size, args.size, 3), dtype=np.uint8)
    extract_features(model, images[: args.batch_size], args.batch_size)
    started, cpu_started = time.perf_counter(), time.process_time()
    embeddings = extract_features(model, images, args.batch_size).embeddings
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    rate = len(embeddings) / seconds
    print(json.dumps({
        "benchmark": "evaluate_throughput",
        "backbone": args.backbone,
        "image_size": args.size,
        "batch_size": args.batch_size,
        "flip_fusion": True,
        "images_timed": args.images,
        "seconds": round(seconds, 2),
        "images_per_second": round(rate, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "images_per_cpu_second": round(len(embeddings) / cpu_seconds, 2),
        "target_images": args.target,
        "target_seconds_extrapolated": round(args.target / rate, 1),
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "cpu_count": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
