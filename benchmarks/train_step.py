"""Steady-state stage-1 train step time (the paired HQ/LQ step of `MultiBranchModel`).

Feeds one fixed in-memory batch, so that input threads do not compete with
compute, warms up (tracing), then times `--steps` steps. Prints one JSON line.
`benchmarks/run.py` builds its stage-1, stage-2 and bare-backbone steps from
the functions here.

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

from catface_keras.config import OptimizerConfig  # noqa: E402
from catface_keras.models.multibranch import MultiBranchModel  # noqa: E402
from catface_keras.models.stage1_training import MultiBranchTraining  # noqa: E402
from catface_keras.models.builders import make_optimizer  # noqa: E402


def paired_batch(pairs, image_size, classes, seed=0):
    shape = (pairs, image_size, image_size, 3)
    generator = tf.random.Generator.from_seed(seed)
    inputs = {"hq": generator.uniform(shape) * 255, "lq": generator.uniform(shape) * 255}
    targets = {
        "identity": generator.uniform((pairs,), 0, classes, tf.int32),
        "attributes": generator.uniform((pairs, 5), 0, 2, tf.int32),
    }
    return inputs, targets


def trainer_optimizer():
    """The trainer's SGD (momentum 0.9, weight decay 5e-4, clipping to norm 5)."""
    return make_optimizer(OptimizerConfig(lr_milestones=[]), 1000)


def stage1_step(backbone, image_size, pairs, classes, jit_compile=False):
    """`(step_fn, images_per_step, model)`: one stage-1 paired SGD step (`jit_compile`: XLA)."""
    model = MultiBranchTraining(
        MultiBranchModel(backbone=backbone, image_size=image_size), num_classes=classes
    )
    model.compile(optimizer=trainer_optimizer(), jit_compile=jit_compile)
    inputs, targets = paired_batch(pairs, image_size, classes)
    return (lambda: model.train_on_batch(inputs, targets)), 2 * pairs, model


def stage2_step(stage1, pairs, classes, fusion="catf"):
    """`(step_fn, images_per_step, model)`: one stage-2 step on `stage1` (a `MultiBranchTraining`,
    frozen)."""
    from catface_keras.models.fusion import FusionModel
    from catface_keras.models.stage2_training import FusionTraining

    model = FusionTraining(FusionModel(stage1.network, fusion=fusion), num_classes=classes)
    model.compile(optimizer=trainer_optimizer())
    inputs, targets = paired_batch(pairs, stage1.network.image_size, classes)
    return (lambda: model.train_on_batch(inputs, targets)), 2 * pairs, model


def backbone_step(backbone, image_size, batch, classes):
    """`(step_fn, images_per_step, model)`: a plain iResNet with a softmax classifier."""
    from catface_keras.backbones.iresnet import IResNetBackbone
    from catface_keras.backbones.iresnet import embedding_head

    images = keras.Input((image_size, image_size, 3))
    features = IResNetBackbone(backbone, image_size=image_size)(images)
    embedding = embedding_head(features, 512, 0.4)
    logits = keras.layers.Dense(classes, dtype="float32")(embedding)
    model = keras.Model(images, logits)
    model.compile(
        optimizer=trainer_optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    generator = tf.random.Generator.from_seed(1)
    x = generator.uniform((batch, image_size, image_size, 3)) * 255
    y = generator.uniform((batch,), 0, classes, tf.int32)
    return (lambda: model.train_on_batch(x, y)), batch, model


def time_steps(step, warmup, steps):
    """Seconds per call of `step` after `warmup` untimed calls: `(median wall, median cpu)`."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        started, started_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


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
    step, images, _ = stage1_step(args.backbone, args.image_size, args.batch, args.classes)
    median, _ = time_steps(step, args.warmup, args.steps)
    print(
        json.dumps(
            {
                "backbone": args.backbone,
                "image_size": args.image_size,
                "pairs_per_step": args.batch,
                "policy": args.policy,
                "median_step_s": round(median, 4),
                "images_per_s": round(images / median, 1),
                "cpu_count": os.cpu_count(),
                "machine": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
