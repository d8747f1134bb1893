"""`catface align` photos per second at 1..N workers, on the same folder.

    python benchmarks/align_throughput.py --faces /work/shared/celeba_sample/img_align_celeba \
        --photos 120 --workers 1 2

Each photo is a face photo pasted at a random place on a 640x480 canvas (a
phone photo's detection cost: MTCNN's pyramid grows with the image); without
`--faces` the faces are synthetic. Times the whole command (worker start
included), so it is the figure a user sees.

Measured 2026-12-06 on a shared 2-core AMD EPYC, 400 CelebA photos on 640x480:
1 worker 6.54 photos/s (47 CPU-s: 8.5 photos per CPU-second, 0.77 cores busy,
TensorFlow's own threads); 2 workers 6.55 photos/s (0.95 cores busy: other jobs,
load 4-7, held the second core). Reports identical.
"""

import argparse
import json
import os
import resource
import pathlib
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from catface_keras.data.synthetic import render_face


def write_photos(folder, faces, count, people=6, seed=0):
    rng = np.random.default_rng(seed)
    paths = sorted(pathlib.Path(faces).glob("*.jpg"))[:count] if faces else [None] * count
    for index, path in enumerate(paths):
        face = (cv2.imread(str(path)) if path is not None
                else render_face(index % 8, index // 8, image_size=200)[..., ::-1])
        canvas = np.full((480, 640, 3), rng.integers(60, 200), np.uint8)
        height, width = face.shape[:2]
        top, left = rng.integers(0, 480 - height), rng.integers(0, 640 - width)
        canvas[top : top + height, left : left + width] = face
        person = folder / f"person{index % people}"
        person.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(person / f"{index:05d}.jpg"), canvas)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=pathlib.Path, default=None)
    parser.add_argument("--photos", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    results = {"photos": args.photos, "cpu_count": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        write_photos(scratch / "photos", args.faces, args.photos)
        for workers in args.workers:
            load = os.getloadavg()[0]
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "catface_keras.cli.main", "align", str(scratch / "photos"),
                 str(scratch / f"aligned{workers}"), "--workers", str(workers)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
            results["runs"].append({
                "workers": workers, "seconds": round(seconds, 1),
                "photos_per_s": round(args.photos / seconds, 2),
                "cpu_s": round(cpu, 1), "cores_busy": round(cpu / seconds, 2),
                "load_average_before": round(load, 2),
                "load_average_after": round(os.getloadavg()[0], 2)})
        reports = [(scratch / f"aligned{w}" / "align_report.json").read_text() for w in args.workers]
        results["reports_identical"] = all(report == reports[0] for report in reports)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
