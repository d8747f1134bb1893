"""IJB-B and IJB-C, 1:1 verification and 1:N identification, as insightface evaluates them.

The 1:1 protocol follows `recognition/arcface_torch/eval_ijbc.py`:

1. Each loose crop is warped onto the ArcFace 112x112 template by the
   least-squares similarity transform of its five landmarks
   (`catface_keras.landmark_alignment.align_face`).
2. Its embedding plus its mirror image's embedding (`flip`), not normalised.
   Without `norm_score` each image feature is L2-normalised (the norm carries
   image quality; insightface's test mode N1 keeps it). With `detector_score`
   it is multiplied by the detector's faceness score (mode D1).
3. In a template, the images of one media (the frames of a video, or one photo)
   are averaged, the media are summed, the sum is L2-normalised.
4. A pair's score is the dot product of its two template features.
5. The ROC is scikit-learn's `roc_curve` (collinear points dropped); the TAR at
   each FAR 1e-6 .. 1e-1 is read at the ROC point whose FAR is nearest, the
   largest TAR among equally near points (insightface flips the curve and takes
   the first minimum).

The 1:N protocol follows insightface's `recognition/_evaluation_/ijb/ijb_evals.py`
(the mixed probe set searched against gallery G1 and G2 separately, IJB-B's S1
and S2): rank-k is the share of mated probes whose gallery template is among the
k best scores (a tie with a non-mated template counts against the probe);
TPIR at FPIR f is the share of mated probes at rank 1 scoring above the
threshold that the top `max(int(f * n) - 1, 0)` of the `n` non-mated probes'
best scores set. The mean row adds the two galleries' rank-k hits over all
probes and averages their TPIRs, as `ijb_evals.py` prints them. (The older
`ijb_1n.py` merges G1 and G2 into one gallery and thresholds on non-mated
pair scores instead; its numbers are not these.)

The paper reports TAR at FAR 1e-4 on both sets (PAPER.md section 8, which
summarises a template as the mean of its images); the numbers it compares
with come from this insightface protocol, so this is what is implemented.
"""

import json
import pathlib

import cv2
import numpy as np

from catface_keras.atomic_files import write_atomically, write_text_atomically
from catface_keras.evaluation.calibration import far_text
from catface_keras.evaluation.official import ijb_meta
from catface_keras.evaluation.roc import FAR_DECADES, far_key, roc_curve
from catface_keras.landmark_alignment import align_face
from catface_keras.unit_vectors import NORM_FLOOR, l2_normalize

# Rows of image features pooled, and pairs scored, at a time: chunks of a few
# tens of MB whatever the set's size.
POOL_CHUNK = 32768
PAIR_CHUNK = 32768
FPIRS = (1e-2, 1e-1)
RANKS = (1, 5, 10)


def find(root):
    """`["ijbb", "ijbc"]`, or those of them whose folder (`IJBB/`, `IJBC/`) is under `root`."""
    return ijb_meta.find_sets(root)


def image_weights(embeddings, faceness, norm_score=True, detector_score=True):
    """The factor insightface scales each image's embedding by before template pooling.

    Without `norm_score` an embedding is L2-normalised (a factor `1 / |e|`);
    with `detector_score` it is multiplied by its faceness score. Both are
    per-row factors, so pooling applies them without a scaled copy of the
    `(N, D)` embeddings.

    Args:
        embeddings: `(N, D)` embeddings (flip-summed or not), not normalised.
        faceness: `(N,)` detector scores.
        norm_score: keep each embedding's norm (insightface's test mode N1).
        detector_score: multiply by the faceness score (mode D1).

    Returns:
        `(N,)` float64.
    """
    weights = np.ones(len(embeddings), np.float64)
    if not norm_score:
        # The rule of `unit_vectors.l2_normalize`: a zero row stays zero.
        weights /= np.maximum(np.linalg.norm(embeddings, axis=1), NORM_FLOOR)
    if detector_score:
        weights *= np.asarray(faceness, np.float64)
    return weights


def template_features(embeddings, templates, media, weights=None, chunk_size=POOL_CHUNK):
    """Pools image embeddings into L2-normalised template features.

    Each image's embedding is scaled by its weight (`image_weights`); in each
    template the images of one media are averaged and the media summed. That is
    a weighted sum with `weight / (images of its media in its template)` per
    image, done here by template in chunks of images (segment sums), never
    holding more than `chunk_size` rows of copies.

    Args:
        embeddings: `(N, D)` image embeddings.
        templates: `(N,)` int template id of each image.
        media: `(N,)` int media id of each image.
        weights: `(N,)` per-image factors, or None for ones.

    Returns:
        `(template_ids, pooled)`: `(T,)` sorted unique template ids and
        `(T, D)` float64 unit rows (a zero sum stays zero).
    """
    embeddings = np.asarray(embeddings)
    templates, media = np.asarray(templates, np.int64), np.asarray(media, np.int64)
    weights = np.ones(len(templates)) if weights is None else np.asarray(weights, np.float64)
    if (embeddings.ndim != 2 or templates.shape != (len(embeddings),)
            or media.shape != templates.shape or weights.shape != templates.shape):
        raise ValueError(
            "`embeddings` must be (N, D) with `templates`, `media` and `weights` (N,). "
            f"Received: embeddings.shape={embeddings.shape}, templates.shape={templates.shape}, "
            f"media.shape={media.shape}, weights.shape={weights.shape}"
        )
    template_ids, template_rows = np.unique(templates, return_inverse=True)
    media_ids, media_rows = np.unique(media, return_inverse=True)
    # One int64 key per (template, media) group: below T * M <= N**2, no overflow.
    _, group, group_sizes = np.unique(
        template_rows * len(media_ids) + media_rows, return_inverse=True, return_counts=True
    )
    weights = weights / group_sizes[group]
    order = np.argsort(template_rows, kind="stable")  # IJB's files are nearly in this order
    pooled = np.zeros((len(template_ids), embeddings.shape[1]), np.float64)
    for start in range(0, len(order), chunk_size):
        images = order[start : start + chunk_size]
        rows = template_rows[images]
        weighted = embeddings.take(images, axis=0).astype(np.float64, copy=False)
        weighted *= weights[images, None]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        # A template cut by the chunk's edge gets its two parts added in two passes.
        pooled[rows[starts]] += np.add.reduceat(weighted, starts, axis=0)
    return template_ids, l2_normalize(pooled)


def template_rows(template_ids, templates):
    """Row of each id of `templates` in the sorted `template_ids`; ValueError if one is absent."""
    rows = np.searchsorted(template_ids, templates)
    rows = np.minimum(rows, len(template_ids) - 1)
    if not np.array_equal(template_ids[rows], templates):
        missing = np.asarray(templates)[template_ids[rows] != templates]
        raise ValueError(f"templates have no feature. Received: templates={missing[:5].tolist()}")
    return rows


def pair_scores(pooled, first_rows, second_rows, chunk_size=PAIR_CHUNK):
    """Dot products of template feature rows, pair by pair, in chunks.

    IJB's pairs put a few thousand templates on one side: those are taken in
    blocks, each block's scores against every template come from one matrix
    product, and each pair picks its entry. Pairs spread over all templates on
    both sides are scored by gathering `chunk_size` rows at a time instead.

    Args:
        pooled: `(T, D)` template features.
        first_rows, second_rows: `(P,)` rows of `pooled`.

    Returns:
        `(P,)` float64 scores in pair order.
    """
    pooled = np.asarray(pooled, np.float64)
    first_rows, second_rows = np.asarray(first_rows, np.int64), np.asarray(second_rows, np.int64)
    distinct = [np.flatnonzero(np.bincount(rows, minlength=len(pooled))) for rows in
                (first_rows, second_rows)]
    if len(distinct[1]) < len(distinct[0]):  # the score is symmetric
        first_rows, second_rows, distinct = second_rows, first_rows, distinct[::-1]
    scores = np.empty(len(first_rows), np.float64)
    # A matrix product costs about a tenth of a gathered dot product per
    # multiply-add; it pays when the product is under ~10 times the pairs' work.
    if len(distinct[0]) * len(pooled) <= 10 * len(first_rows):
        # Stable argsort of 16-bit keys is a radix sort, 3x faster on IJB-C's 15.7M pairs.
        keys = first_rows.astype(np.uint16) if len(pooled) <= 1 << 16 else first_rows
        order = np.argsort(keys, kind="stable")
        sorted_first = first_rows[order]
        block = max(1, (chunk_size * 128) // len(pooled))  # products of ~32 MB
        for start in range(0, len(distinct[0]), block):
            rows = distinct[0][start : start + block]
            low, high = np.searchsorted(sorted_first, [rows[0], rows[-1] + 1])
            pairs = order[low:high]
            products = pooled[rows] @ pooled.T
            scores[pairs] = products[np.searchsorted(rows, first_rows[pairs]), second_rows[pairs]]
        return scores
    for start in range(0, len(first_rows), chunk_size):
        end = start + chunk_size
        product = pooled.take(first_rows[start:end], axis=0)
        product *= pooled.take(second_rows[start:end], axis=0)
        scores[start:end] = product.sum(axis=1)
    return scores


def insightface_roc(scores, same):
    """`sklearn.metrics.roc_curve(same, scores)` (its default `drop_intermediate=True`).

    Points collinear with both neighbours on the full ROC are dropped, as
    scikit-learn does; which points remain decides the TAR read nearest a FAR.

    Returns:
        `(far, tar)`, ascending, starting at `(0, 0)`.
    """
    far, tar, _ = roc_curve(scores, same)
    if len(far) > 3:
        # Collinearity is judged on the accept counts, exact integers (as scikit-learn does),
        # not on the rates, whose rounding would keep every point.
        same = np.asarray(same, bool)
        false_accepts = np.round(far[1:] * np.sum(~same))  # (0, 0) is prepended after
        true_accepts = np.round(tar[1:] * np.sum(same))
        bends = np.logical_or(np.diff(false_accepts, 2) != 0, np.diff(true_accepts, 2) != 0)
        keep = np.flatnonzero(np.r_[True, bends, True]) + 1
        far, tar = np.r_[0.0, far[keep]], np.r_[0.0, tar[keep]]
    return far, tar


def tar_at_nearest_fars(far, tar, fars=FAR_DECADES):
    """TAR at the ROC point whose FAR is nearest each target (ties: the largest TAR).

    Returns:
        dict target -> `(tar, far of the point read)`.
    """
    far, tar = np.asarray(far)[::-1], np.asarray(tar)[::-1]  # np.argmin keeps the first
    result = {}
    for target in fars:
        index = int(np.argmin(np.abs(far - target)))
        result[target] = (float(tar[index]), float(far[index]))
    return result


def _identification_counts(probe_features, probe_subjects, gallery_features, gallery_subjects,
                           fpirs, chunk_size=4096):
    gallery_index = {subject: row for row, subject in enumerate(gallery_subjects.tolist())}
    mated_rows = np.array([gallery_index.get(s, -1) for s in probe_subjects.tolist()], np.int64)
    ranks, positive, non_mated_best = [], [], []
    for start in range(0, len(probe_features), chunk_size):
        similarity = probe_features[start : start + chunk_size] @ gallery_features.T
        rows = mated_rows[start : start + chunk_size]
        mated = rows >= 0
        scores = similarity[mated, rows[mated]]
        others = similarity[mated].copy()
        others[np.arange(len(scores)), rows[mated]] = -np.inf
        ranks.append(1 + np.sum(others >= scores[:, None], axis=1))
        positive.append(scores)
        non_mated_best.append(similarity[~mated].max(axis=1, initial=-np.inf))
    ranks, positive = np.concatenate(ranks), np.concatenate(positive)
    best = np.sort(np.concatenate(non_mated_best))[::-1]
    result = {"mated_probes": len(ranks), "non_mated_probes": len(best)}
    for k in RANKS:
        result[f"rank{k}_hits"] = int(np.sum(ranks <= k))
        result[f"rank{k}"] = float(np.mean(ranks <= k)) if len(ranks) else None
    for fpir in fpirs:
        key = f"tpir_at_fpir_{far_text(fpir)}"
        if len(best) == 0 or len(ranks) == 0:
            result[key] = None
            continue
        threshold = best[max(int(len(best) * fpir) - 1, 0)]
        result[key] = float(np.sum((ranks == 1) & (positive > threshold)) / len(ranks))
    return result


def identification(pooled, template_ids, galleries, probes, fpirs=FPIRS):
    """The 1:N protocol of each gallery, and their mean (see the module docstring).

    Args:
        pooled: `(T, D)` template features, rows in `template_ids` order.
        template_ids: `(T,)` sorted ids.
        galleries: `IJBSearchSet`s, searched separately.
        probes: the probe `IJBSearchSet`.

    Returns:
        dict gallery name (and `"mean"`) -> metrics (`rank1`, `rank5`, `rank10`,
        `tpir_at_fpir_1e-2`, ...; None where a set has no mated or no non-mated probe).
    """
    probe_features = pooled[template_rows(template_ids, probes.templates)]
    results = {}
    for gallery in galleries:
        results[gallery.name] = _identification_counts(
            probe_features, probes.subjects, pooled[template_rows(template_ids, gallery.templates)],
            gallery.subjects, fpirs,
        )
    mean = {}
    for k in RANKS:
        mean[f"rank{k}"] = sum(r[f"rank{k}_hits"] for r in results.values()) / len(probes.templates)
    for fpir in fpirs:
        key = f"tpir_at_fpir_{far_text(fpir)}"
        values = [r[key] for r in results.values()]
        mean[key] = None if None in values else float(np.mean(values))
    results["mean"] = mean
    return results


def aligned_image_loader(protocol):
    """`load_images(indices) -> (n, 112, 112, 3)` uint8 RGB of the protocol's aligned crops.

    Each crop is read as BGR, warped onto the ArcFace template by its five
    landmarks and converted to RGB after the warp, as insightface does.
    """
    images = protocol.images

    def load_images(indices):
        batch = np.empty((len(indices), 112, 112, 3), np.uint8)
        for slot, index in enumerate(np.asarray(indices, np.int64).tolist()):
            path = protocol.image_folder / images.names[index]
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot decode the IJB image. Received: path={path}")
            aligned = align_face(image, images.landmarks[index])
            batch[slot] = cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB)
        return batch

    return load_images


def _plot_roc(far, tar, path, title):
    from catface_keras.evaluation.plots import plot_far_tar

    # A few thousand points on a log grid draw the same curve as 15 million.
    # (the last point at or below each grid FAR: the highest TAR there).
    grid = np.geomspace(max(far[far > 0].min(), 1e-7), 1, 4000)
    shown = np.unique(np.searchsorted(far, grid, side="right") - 1)
    shown = shown[far[shown] > 0]
    write_atomically(path, lambda temporary: plot_far_tar(
        [(far[shown], tar[shown], {})], temporary, title, min_far=1e-6))


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}"


def _markdown_report(name, options, tars, identification_results):
    header = " | ".join(far_text(far) for far in tars)
    lines = [
        f"# {name.upper()} (insightface protocol)", "",
        "Options: " + ", ".join(f"{key}={value}" for key, value in options.items()), "",
        "## 1:1 verification, TAR (%) at FAR", "",
        f"| FAR | {header} |", "|---" * (len(tars) + 1) + "|",
        "| TAR | " + " | ".join(_percent(tar) for tar, _ in tars.values()) + " |",
        "| FAR read | " + " | ".join(f"{read:.2e}" for _, read in tars.values()) + " |",
    ]
    if identification_results:
        keys = [f"rank{k}" for k in RANKS] + [f"tpir_at_fpir_{far_text(f)}" for f in FPIRS]
        lines += ["", "## 1:N identification (%)", "",
                  "| gallery | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for gallery, metrics in identification_results.items():
            lines.append(f"| {gallery} | " + " | ".join(_percent(metrics[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def run(name, root, extractor, out_dir, flip=True, norm_score=True, detector_score=True,
        batch_size=None):
    """Runs set `name`'s 1:1 (and, where its files are present, 1:N) protocol.

    All meta files are read and checked first (`ijb_meta.read_protocol`); then
    the crops are aligned and embedded through `extractor.features`, and the
    results are written, each file atomically, once all are computed:
    `scores.npy` (pair scores in the pair file's order), `roc.png`,
    `report.md` and `report.json`.

    Args:
        name: `"ijbb"` or `"ijbc"`.
        root: folder holding `IJBB/` and/or `IJBC/`.
        extractor: has `features(key, count, load_images, flip, normalize)`.
        out_dir: existing folder for this set's and model's report.
        flip, norm_score, detector_score: insightface's test modes F1, N1, D1
            (the published setting: all on).
        batch_size: accepted for the benchmark runner's uniform options; the
            extractor batches the images.

    Returns:
        `{name: TAR at FAR 1e-4, f"{name}_tar_at_far_1e-6": ..., ...}` and, with
        1:N, `f"{name}_1n_rank1"`, `..._rank5`, `..._rank10`,
        `f"{name}_1n_tpir_at_fpir_1e-2"`, `..._1e-1` (the mean over galleries).
    """
    del batch_size
    out_dir = pathlib.Path(out_dir)
    protocol = ijb_meta.read_protocol(root, name)
    images = protocol.images
    embedded = extractor.features(
        name, len(images.names), aligned_image_loader(protocol), flip=flip, normalize=False
    )
    weights = image_weights(embedded.embeddings, images.faceness, norm_score, detector_score)
    template_ids, pooled = template_features(
        embedded.embeddings, images.templates, images.media, weights
    )
    scores = pair_scores(
        pooled, template_rows(template_ids, protocol.first),
        template_rows(template_ids, protocol.second),
    )
    far, tar = insightface_roc(scores, protocol.same)
    tars = tar_at_nearest_fars(far, tar)
    identification_results = (
        identification(pooled, template_ids, protocol.galleries, protocol.probes)
        if protocol.galleries else {}
    )

    options = {"flip": flip, "norm_score": norm_score, "detector_score": detector_score}
    cells = {name: tars[1e-4][0]}
    cells.update({f"{name}_{far_key(f)}": value for f, (value, _) in tars.items()})
    for key, value in identification_results.get("mean", {}).items():
        cells[f"{name}_1n_{key}"] = value
    report = {
        "set": name, "options": options, "images": len(images.names),
        "templates": len(template_ids), "pairs": len(scores),
        "genuine_pairs": int(protocol.same.sum()),
        "tar_at_far": {far_text(f): {"tar": t, "far_read": r} for f, (t, r) in tars.items()},
        "identification": identification_results,
    }
    write_atomically(out_dir / "scores.npy", lambda temporary: np.save(temporary, scores))
    _plot_roc(far, tar, out_dir / "roc.png", f"{name.upper()} 1:1 ROC")
    write_text_atomically(json.dumps(report, indent=2) + "\n", out_dir / "report.json")
    write_text_atomically(
        _markdown_report(name, options, tars, identification_results), out_dir / "report.md"
    )
    return cells
