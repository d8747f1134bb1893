"""The whole `catface train` loop from JPEG files against the train step alone: one JSON line.

    python benchmarks/training_loop.py --faces /work/shared/celeba_sample/img_align_celeba \
        --images 1024 --backbone ir_18 --image-size 112 --pairs 16 --cores 2

Writes `--images` 112-px JPEG faces as an image folder in a temp folder (CelebA
photos cropped around the face with `--faces`, else `render_face` faces), builds
the training data exactly as `catface train` does (`load_training_data`,
`trainer.training_pairs`: read, decode, degrade, pair, prefetch) and the
stage-1 model from the config, then measures in one process:

- `pipeline`: the input pipeline alone (batches drawn, nothing trained);
- `step`: `model.fit` on one batch held in memory, repeated (no input work);
- `loop`: `model.fit` on the pipeline, as `catface train` runs it.

Both fits time whole epochs of `--steps` steps after one untimed epoch (tracing),
the best of two, so they differ only in where the batches come from.

`loop_overhead` is `1 - loop / step`: the share of the step's throughput the input
pipeline costs. Every figure carries the 1-minute load average before and after
it (the machine may be shared). `benchmarks/run.py` times `pipeline` through
`input_pipeline_rate` (on a GPU the host prepares the batches).

Measured 2026-12-06 on a shared 2-core AMD EPYC (mixed_bfloat16, CelebA JPEGs):
IR-18 at 112 px, 16 pairs: pipeline alone 283 images/s, step 14.8, loop 14.4
(2.7 % below the step; load 3.8-4.5); IR-18 at 64 px, 32 pairs: pipeline 448,
step 20.1, loop 22.1 (load 6.4-7.7, within noise). The pipeline, already
parallel and prefetched, costs under 10 % of a step on 2 cores.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load():
    return round(os.getloadavg()[0], 2)


def write_faces(folder, count, size=112, faces=None, identities=32):
    """`count` JPEG faces of `size` px in `identities` person folders under `folder`."""
    import cv2

    from catface_keras.data.synthetic import render_face

    folder = pathlib.Path(folder)
    photos = sorted(pathlib.Path(faces).glob("*.jpg"))[:count] if faces else []
    for index in range(count):
        if photos:
            image = cv2.imread(str(photos[index % len(photos)]))
            # CelebA's aligned 178x218 photos: the face fills the central square.
            image = cv2.resize(image[45:193, 15:163], (size, size), interpolation=cv2.INTER_AREA)
        else:
            image = render_face(index % identities, index // identities, size)[..., ::-1]
        person = folder / f"id{index % identities:03d}"
        person.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(person / f"{index:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder


def experiment(folder, backbone, image_size, pairs):
    from catface_keras.config import config_from_dict

    return config_from_dict({
        "data": {"source": "image_folder", "path": str(folder), "image_size": image_size},
        "model": {"backbone": backbone},
        "train": {"batch_size": pairs, "epochs": 1000, "mixed_precision": "auto"},
    })


def input_pipeline_rate(config, batches, warmup=2):
    """Images per second (HQ and LQ counted, as the step counts them) that the training
    pipeline of `config` delivers alone, and its `(train faces, dataset, steps per epoch)`."""
    from catface_keras.trainer import load_data, training_pairs

    train, _ = load_data(config)
    dataset, steps_per_epoch = training_pairs(config, train, 0, config.train.seed)
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - started
    return 2 * config.train.batch_size * batches / seconds, (train, dataset, steps_per_epoch)


class _EpochTimes:
    """Keras callback factory: wall time of each epoch (imported lazily with keras)."""

    @staticmethod
    def make():
        import keras

        class EpochTimes(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._started)

        return EpochTimes()


def measure(config, steps, warmup=2):
    """`{"pipeline", "step", "loop"}` images/s of `config`'s stage-1 training."""
    import keras
    import tensorflow as tf

    from catface_keras.models.builders import build_stage1_model, make_optimizer
    from catface_keras.precision import choose_dtype_policy

    keras.config.set_dtype_policy(choose_dtype_policy(config.train.mixed_precision) or "float32")
    images_per_step = 2 * config.train.batch_size
    result = {"policy": keras.config.dtype_policy().name}

    before = load()
    pipeline_rate, (train, dataset, steps_per_epoch) = input_pipeline_rate(config, steps, warmup)
    result["pipeline"] = {"images_per_s": round(pipeline_rate, 1), "load_before": before,
                          "load_after": load()}

    model = build_stage1_model(config, train.num_classes)
    model.compile(optimizer=make_optimizer(config.optimizer, steps_per_epoch))
    one_batch = tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()
    for name, source in (("step", one_batch), ("loop", dataset)):
        # Epochs of `steps` steps; the first traces the step (and fills the pipeline).
        times = _EpochTimes.make()
        before = load()
        model.fit(source, epochs=3, steps_per_epoch=steps, callbacks=[times], verbose=0,
                  shuffle=False)
        result[name] = {"images_per_s": round(images_per_step * steps / min(times.seconds[1:]), 1),
                        "load_before": before, "load_after": load()}
    result["loop_overhead"] = round(
        1 - result["loop"]["images_per_s"] / result["step"]["images_per_s"], 3)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=pathlib.Path, default=None,
                        help="folder of CelebA aligned .jpg photos (default: synthetic faces)")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--backbone", default="ir_18")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--pairs", type=int, default=16, help="HQ/LQ pairs per step")
    parser.add_argument("--steps", type=int, default=8, help="timed steps (and batches)")
    parser.add_argument("--cores", type=int, default=None, help="pin to this many cores")
    args = parser.parse_args(argv)
    if args.cores:
        from cpu_affinity import pin_to_cores

        pin_to_cores(args.cores)
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_faces(pathlib.Path(scratch, "faces"), args.images, args.image_size,
                             args.faces)
        config = experiment(folder, args.backbone, args.image_size, args.pairs)
        result = measure(config, args.steps)
    print(json.dumps({
        "images": args.images, "backbone": args.backbone, "image_size": args.image_size,
        "pairs": args.pairs, "steps": args.steps,
        "cores": len(os.sched_getaffinity(0)), "faces": "celeba" if args.faces else "synthetic",
        **result,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
