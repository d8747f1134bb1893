"""Throughput of the real-data path: one JSON line.

Writes synthetic 112x112 JPEG faces as an image folder, then measures:
- `decode_per_s`: `decode_image` alone (OpenCV, RGB conversion), one thread;
- `stream_per_s`: the training stream (`random_access_elements` + `decode_elements`),
  read file, decode, filter, with tf.data parallelism;
- `convert_per_s`: `write_tfrecord_shards` (decode check, original bytes kept);
- `tfrecord_stream_per_s`: decoding the shards back (`read_tfrecord_dataset`);
- `idx_lines_per_s`: parsing a RecordIO `.idx`.

    python benchmarks/data_throughput.py --images 2000
"""

import argparse
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from catface_keras.data.decoding import SkippedImages, decode_elements, decode_image  # noqa: E402
from catface_keras.data.image_folder import read_image_folder  # noqa: E402
from catface_keras.data.recordio import read_index  # noqa: E402
from catface_keras.data.sources import random_access_elements  # noqa: E402
from catface_keras.data.synthetic import render_face  # noqa: E402
from catface_keras.data.tfrecord import read_tfrecord_dataset, write_tfrecord_shards  # noqa: E402


def rate(count, seconds):
    return round(count / seconds, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(scratch, "faces")
        faces = [render_face(i % 50, i, args.size) for i in range(min(args.images, 200))]
        encoded = [
            cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))[1].tobytes()
            for face in faces
        ]
        for index in range(args.images):
            path = root / f"id{index % 50:03d}" / f"{index:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encoded[index % len(encoded)])
        files = read_image_folder(root)

        started = time.perf_counter()
        for index in range(args.images):
            decode_image(encoded[index % len(encoded)], args.size)
        decode_seconds = time.perf_counter() - started

        stream = decode_elements(
            random_access_elements(files, tf.constant([0, 1], tf.int64)), args.size, SkippedImages()
        ).batch(128)
        started = time.perf_counter()
        seen = sum(int(images.shape[0]) for images, _, _ in stream)
        stream_seconds = time.perf_counter() - started

        started = time.perf_counter()
        write_tfrecord_shards(files, pathlib.Path(scratch, "shards"), num_shards=4)
        convert_seconds = time.perf_counter() - started

        shards = read_tfrecord_dataset(pathlib.Path(scratch, "shards"), args.size).batch(128)
        started = time.perf_counter()
        back = sum(int(images.shape[0]) for images, _, _ in shards)
        tfrecord_seconds = time.perf_counter() - started

        lines = 1_000_000
        index_path = pathlib.Path(scratch, "train.idx")
        offsets = np.cumsum(np.full(lines, 5000, np.int64))
        index_path.write_text("".join(f"{k}\t{o}\n" for k, o in enumerate(offsets)))
        started = time.perf_counter()
        read_index(index_path)
        index_seconds = time.perf_counter() - started

    print(json.dumps({
        "images": args.images,
        "size": args.size,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "decode_per_s": rate(args.images, decode_seconds),
        "stream_per_s": rate(seen, stream_seconds),
        "convert_per_s": rate(args.images, convert_seconds),
        "tfrecord_stream_per_s": rate(back, tfrecord_seconds),
        "idx_lines_per_s": rate(lines, index_seconds),
    }))


if __name__ == "__main__":
    main()
