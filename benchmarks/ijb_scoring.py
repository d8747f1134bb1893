"""Wall time and peak memory of IJB-C's scoring step on random features.

Times what `catface_keras.evaluation.official.ijb.run` does after the images are
embedded: per-image weights (norm kept, faceness), template pooling,
the 15,658,489 pair scores, the ROC and the TAR table, on random `(469375, 512)`
float64 "embeddings" with IJB-C's counts of images, templates and pairs (random
template/media assignment, 19,557 genuine pairs, the first template of a pair drawn
from 15% of the templates as in IJB-B). `--scale 0.1` shrinks every
count tenfold. With `--pair-file` it also times reading a pair file of that
size (written to a temporary folder first, untimed).

Prints one JSON line: seconds per stage, total, and the process's peak resident
memory (`ru_maxrss`, which includes the inputs).

    python benchmarks/ijb_scoring.py            # full IJB-C size, needs about 6 GB
    python benchmarks/ijb_scoring.py --scale 0.1
"""

import argparse
import json
import pathlib
import resource
import tempfile
import time

import numpy as np

IJBC_IMAGES, IJBC_TEMPLATES, IJBC_PAIRS, IJBC_GENUINE = 469_375, 23_124, 15_658_489, 19_557


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of IJB-C's counts")
    parser.add_argument("--dim", type=int, default=512, help="embedding size (default: 512)")
    parser.add_argument("--pair-file", action="store_true", help="also time reading the pair file")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    return args


def synthetic_ijb(scale, dim, seed=0):
    rng = np.random.default_rng(seed)
    images, templates = int(IJBC_IMAGES * scale), int(IJBC_TEMPLATES * scale)
    pairs, genuine = int(IJBC_PAIRS * scale), int(IJBC_GENUINE * scale)
    template_of_image = np.r_[np.arange(templates), rng.integers(0, templates, images - templates)]
    # Template ids as IJB-C spreads them (up to ~190,000), media ids shared by a few images.
    template_ids = np.sort(rng.choice(190_000, templates, replace=False))
    media = rng.integers(0, images // 4, images)
    # IJB-B's pairs put 1,845 of its 12,115 templates first; the same share here.
    first_side = rng.choice(templates, max(1, int(templates * 1845 / 12115)), replace=False)
    first = template_ids[first_side[rng.integers(0, len(first_side), pairs)]]
    second = template_ids[rng.integers(0, templates, pairs)]
    same = np.zeros(pairs, bool)
    same[rng.choice(pairs, genuine, replace=False)] = True
    embeddings = rng.standard_normal((images, dim))
    faceness = rng.uniform(0.5, 1.0, images)
    return embeddings, faceness, template_ids[template_of_image], media, first, second, same


def main(argv=None):
    args = parse_args(argv)
    from catface_keras.evaluation.official import ijb, ijb_meta

    data = synthetic_ijb(args.scale, args.dim)
    embeddings, faceness, templates, media, first, second, same = data
    del data
    seconds = {}
    start = time.perf_counter()
    weights = ijb.image_weights(embeddings, faceness)
    template_ids, pooled = ijb.template_features(embeddings, templates, media, weights)
    del embeddings
    seconds["pooling"] = time.perf_counter() - start
    mark = time.perf_counter()
    scores = ijb.pair_scores(
        pooled, ijb.template_rows(template_ids, first), ijb.template_rows(template_ids, second)
    )
    seconds["pair_scores"] = time.perf_counter() - mark
    mark = time.perf_counter()
    far, tar = ijb.insightface_roc(scores, same)
    ijb.tar_at_nearest_fars(far, tar)
    seconds["roc_and_tar"] = time.perf_counter() - mark
    seconds["scoring_total"] = time.perf_counter() - start
    if args.pair_file:
        with tempfile.TemporaryDirectory() as folder:
            path = pathlib.Path(folder) / "pairs.txt"
            np.savetxt(path, np.stack([first, second, same.astype(np.int64)], 1), fmt="%d")
            mark = time.perf_counter()
            ijb_meta._read_pairs(path)
            seconds["read_pair_file"] = time.perf_counter() - mark
    print(json.dumps({
        "scale": args.scale, "images": len(templates), "templates": len(template_ids),
        "pairs": len(scores), "dim": args.dim,
        "seconds": {key: round(value, 2) for key, value in seconds.items()},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }))


if __name__ == "__main__":
    main()
