"""TinyFace (Cheng et al., ACCV 2018) 1:N identification, as AdaFace's `validation_lq` scores it.

Layout (the official test split, unzipped under the benchmark root, plus the
aligned copy AdaFace's authors distribute, beside it as in their `data_root`):

    ROOT/tinyface/Testing_Set/probe_img_ID_pairs.mat           probe_set, probe_ids (3728)
    ROOT/tinyface/Testing_Set/gallery_match_img_ID_pairs.mat   gallery_set, gallery_ids (4443)
    ROOT/tinyface/Testing_Set/{Probe,Gallery_Match,Gallery_Distractor}/   the raw crops
    ROOT/aligned_pad_0.1_pad_high/{Probe,Gallery_Match,Gallery_Distractor}/   112x112 aligned

(`ROOT/Testing_Set/...` without the `tinyface/` level is read too.) The raw
crops are tiny (about 20x16 px) and not aligned; AdaFace evaluates the aligned
copy (each crop squarified and resized to 32x32, then MTCNN-aligned to the
112x112 template; mk-minchul/AdaFace issue #92), matched to the lists by file stem. Resizing the
raw crops instead costs about 26 rank-1 points, so without an aligned folder
the benchmark stops with an error rather than give an incomparable number.

Protocol (AdaFace `validation_lq/tinyface_helper.py`): gallery = Gallery_Match
(labels from the `.mat`) + every image of Gallery_Distractor (no label);
each probe is scored against every gallery image by the inner product of the
flip-fused, normalised embeddings; a probe is correct at rank k when a gallery
image of its identity is among its k best-scoring images (each gallery image a
candidate of its own, not one per identity). CMC rank 1, 5, 20.
"""

import pathlib

import numpy as np

from catface_keras.atomic_files import write_atomically, write_text_atomically
from catface_keras.choices import IMAGE_SUFFIXES
from catface_keras.evaluation.official.table import write_json

NAME = "tinyface"
ALIGNED_FOLDER = "aligned_pad_0.1_pad_high"
FOLDERS = ("Probe", "Gallery_Match", "Gallery_Distractor")
LISTS = {"Probe": ("probe_img_ID_pairs.mat", "probe_set", "probe_ids"),
         "Gallery_Match": ("gallery_match_img_ID_pairs.mat", "gallery_set", "gallery_ids")}
REPORTED_RANKS = (1, 5, 20)
CMC_RANKS = 50
ALIGNED_SIZE = 112
_NO_LABEL = -1


def testing_set(root):
    """`ROOT/tinyface/Testing_Set` or `ROOT/Testing_Set`, whichever holds the `.mat` lists."""
    root = pathlib.Path(root)
    for folder in (root / "tinyface" / "Testing_Set", root / "Testing_Set"):
        if any((folder / mat).is_file() for mat, _, _ in LISTS.values()):
            return folder
    return None


def find(root):
    return [NAME] if testing_set(root) is not None else []


def aligned_folder(root):
    """The aligned copy: `ROOT/aligned_pad_0.1_pad_high` or beside `Testing_Set`'s parent."""
    root = pathlib.Path(root)
    for folder in (root / ALIGNED_FOLDER, root / "tinyface" / ALIGNED_FOLDER):
        if folder.is_dir():
            return folder
    return None


def read_image_list(path, names_key, ids_key):
    """`(names, ids)` of a TinyFace `.mat` list: file names and `(N,)` int identities."""
    import scipy.io

    try:
        content = scipy.io.loadmat(str(path))
    except Exception as error:  # scipy raises many kinds of error for a damaged file
        raise ValueError(f"{path} is not a readable MATLAB .mat file: {error}") from None
    missing = [key for key in (names_key, ids_key) if key not in content]
    if missing:
        keys = sorted(key for key in content if not key.startswith("__"))
        raise ValueError(f"{path} has no {' or '.join(missing)} (expected keys {names_key} "
                         f"and {ids_key}). Received: keys {keys}")
    cells = np.asarray(content[names_key], dtype=object).reshape(-1)
    names = []
    for index, cell in enumerate(cells):
        value = np.asarray(cell).reshape(-1)
        if value.size != 1 or not isinstance(value[0], str):
            raise ValueError(f"{path}: {names_key} entry {index + 1} is not a file name. "
                             f"Received: {cell!r}")
        names.append(str(value[0]))
    try:
        ids = np.asarray(content[ids_key], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {ids_key} must hold numbers") from None
    if len(ids) != len(names) or not np.all(ids == np.round(ids)):
        raise ValueError(f"{path}: {ids_key} must hold one integer identity per entry of "
                         f"{names_key}. Received: {len(ids)} values for {len(names)} names")
    return names, ids.astype(np.int64)


def _images_by_stem(folder):
    return {path.stem: path for path in sorted(folder.iterdir())
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES}


def check_image_size(path, size=ALIGNED_SIZE, hint=""):
    """Raises `ValueError` unless the image file's header says `size` x `size`."""
    from catface_keras.data.decoding import image_dimensions

    dimensions = image_dimensions(pathlib.Path(path).read_bytes())
    if dimensions is None:
        raise ValueError(f"{path} is not a readable image")
    if tuple(dimensions) != (size, size):
        raise ValueError(f"{path} is {dimensions[0]}x{dimensions[1]}, not an aligned "
                         f"{size}x{size} face{hint}")


def load_protocol(root):
    """The image files and labels of the TinyFace test protocol.

    Returns:
        dict with `paths` (probes, gallery matches, distractors, in that order),
        `labels` (`-1` for distractors), `probe`, `gallery` (index arrays into
        `paths`) and `counts`.

    Raises:
        ValueError: naming the file, for a missing or malformed list, an aligned
            folder that is missing or lacks a listed image, or images that are not
            112x112.
    """
    test = testing_set(root)
    if test is None:
        raise ValueError(f"{root} holds no TinyFace Testing_Set with "
                         f"{' and '.join(mat for mat, _, _ in LISTS.values())}")
    aligned = aligned_folder(root)
    if aligned is None:
        raise ValueError(
            f"TinyFace: {test} is there but not its aligned copy "
            f"{pathlib.Path(root) / ALIGNED_FOLDER}/{{{','.join(FOLDERS)}}}. The raw crops are not aligned 112x112 faces (resizing "
            "them costs about 26 rank-1 points); AdaFace evaluates the aligned copy its authors "
            "distribute (see the README, 'Comparing with published numbers'), or align them "
            "yourself keeping the file names. Leave TinyFace out with --only."
        )
    # Both lists first: a damaged one stops the run before any image is looked at.
    lists = {folder: read_image_list(test / mat, names_key, ids_key)
             for folder, (mat, names_key, ids_key) in LISTS.items()}
    paths, labels, groups = [], [], {}
    for folder in FOLDERS:
        source = aligned / folder
        if not source.is_dir():
            raise ValueError(f"TinyFace: the aligned folder {source} does not exist")
        by_stem = _images_by_stem(source)
        if folder in LISTS:
            mat = LISTS[folder][0]
            names, ids = lists[folder]
            files = []
            for name in names:
                stem = pathlib.PurePath(name).stem
                if stem not in by_stem:
                    raise ValueError(f"TinyFace: {test / mat} lists {name}, which is not in "
                                     f"{source} (matched by file name without extension)")
                files.append(by_stem[stem])
        else:
            files = list(by_stem.values())
            ids = np.full(len(files), _NO_LABEL, np.int64)
        if files:
            check_image_size(files[0], hint=f" (TinyFace {folder} must hold the aligned copy)")
        groups[folder] = np.arange(len(paths), len(paths) + len(files))
        paths += files
        labels.append(ids)
    labels = np.concatenate(labels)
    probe_ids = labels[groups["Probe"]]
    missing = np.setdiff1d(probe_ids, labels[groups["Gallery_Match"]])
    if len(missing):
        raise ValueError(f"TinyFace: probe identities {missing[:5].tolist()} of "
                         f"{test / LISTS['Probe'][0]} have no image in Gallery_Match")
    return {
        "paths": paths,
        "labels": labels,
        "probe": groups["Probe"],
        "gallery": np.concatenate([groups["Gallery_Match"], groups["Gallery_Distractor"]]),
        "counts": {folder: int(len(index)) for folder, index in groups.items()},
    }


def check(name, root, **options):
    load_protocol(root)


def file_loader(paths, size=ALIGNED_SIZE):
    """`load_images(indices)` for the contract: decodes the files, each `size` x `size`."""
    from catface_keras.data.decoding import ImageDecodeError, decode_image

    def load_images(indices):
        images = np.empty((len(indices), size, size, 3), np.uint8)
        for row, index in enumerate(indices):
            path = paths[index]
            try:
                image = decode_image(pathlib.Path(path).read_bytes())
            except (OSError, ImageDecodeError) as error:
                raise ValueError(f"cannot read image {path}: {error}") from None
            if image.shape[:2] != (size, size):
                raise ValueError(f"{path} is {image.shape[1]}x{image.shape[0]}, not an aligned "
                                 f"{size}x{size} face")
            images[row] = image
        return images

    return load_images


def image_ranks(probe_features, probe_labels, gallery_features, gallery_labels,
                chunk_size=256):
    """The rank of each probe's best-scoring mate among all gallery images.

    Scores are inner products (the features are normalised already). Rank = 1 +
    the number of non-mate gallery images scoring at least as high as the best
    mate (ties go against the probe). Distractors carry a label no probe has.

    Args:
        probe_features: `(Q, D)`; probe_labels: `(Q,)` int, each in the gallery.
        gallery_features: `(G, D)`; gallery_labels: `(G,)` int.
        chunk_size: probes scored at once (memory: `chunk_size * G` floats).

    Returns:
        `(Q,)` int64 ranks >= 1.
    """
    probe_labels = np.asarray(probe_labels)
    gallery_labels = np.asarray(gallery_labels)
    if len(probe_features) != len(probe_labels) or len(gallery_features) != len(gallery_labels):
        raise ValueError("Features and labels must have one row per image. Received: "
                         f"{len(probe_features)} probe features, {len(probe_labels)} labels, "
                         f"{len(gallery_features)} gallery features, {len(gallery_labels)} "
                         "labels")
    missing = np.setdiff1d(probe_labels, gallery_labels)
    if len(missing):
        raise ValueError(f"Probe identities {missing[:5].tolist()} have no gallery image")
    gallery = np.asarray(gallery_features, np.float64)
    ranks = np.empty(len(probe_labels), np.int64)
    for start in range(0, len(probe_labels), chunk_size):
        stop = start + chunk_size
        scores = np.asarray(probe_features[start:stop], np.float64) @ gallery.T
        mate = probe_labels[start:stop, None] == gallery_labels[None, :]
        best_mate = np.where(mate, scores, -np.inf).max(axis=1)
        ranks[start:stop] = 1 + np.sum((scores >= best_mate[:, None]) & ~mate, axis=1)
    return ranks


def cmc(ranks, max_rank=CMC_RANKS):
    """`(max_rank,)`: share of probes with rank <= k for k = 1 .. max_rank."""
    ranks = np.asarray(ranks)
    return np.array([np.mean(ranks <= k) for k in range(1, max_rank + 1)])


def write_cmc(out_dir, curves, title):
    """`cmc.csv` (rank and one column per curve) and `cmc.png` in `out_dir`."""
    from catface_keras.evaluation.plots import plot_cmc_curves

    out_dir = pathlib.Path(out_dir)
    names = list(curves)
    rows = ["rank," + ",".join(names)]
    length = len(next(iter(curves.values())))
    for k in range(length):
        rows.append(f"{k + 1}," + ",".join(f"{curves[name][k]:.6f}" for name in names))
    write_text_atomically("\n".join(rows) + "\n", out_dir / "cmc.csv")
    write_atomically(out_dir / "cmc.png", lambda file: plot_cmc_curves(curves, file, title))


def run(name, root, extractor, out_dir, flip=True, **options):
    """Embeds the probes, matches and distractors, writes `report.md`, `results.json`,
    `cmc.csv` and `cmc.png`, returns `{"tinyface_r1", "tinyface_r5", "tinyface_r20"}`."""
    protocol = load_protocol(root)
    paths, labels = protocol["paths"], protocol["labels"]
    features = extractor.features(NAME, len(paths), file_loader(paths), flip=flip,
                                  normalize=True)
    embeddings = features.embeddings
    probe, gallery = protocol["probe"], protocol["gallery"]
    ranks = image_ranks(embeddings[probe], labels[probe], embeddings[gallery], labels[gallery])
    curve = cmc(ranks, min(CMC_RANKS, len(gallery)))
    cells = {f"tinyface_r{k}": float(np.mean(ranks <= k)) for k in REPORTED_RANKS}
    out_dir = pathlib.Path(out_dir)
    write_cmc(out_dir, {"TinyFace": curve}, "CMC, TinyFace (probes vs matches + distractors)")
    counts = protocol["counts"]
    write_json(out_dir / "results.json", {
        "benchmark": NAME, "testing_set": str(testing_set(root)),
        "aligned": str(aligned_folder(root)), "flip": bool(flip), "counts": counts,
        "scoring": "inner product of normalised flip-fused embeddings, every gallery image a "
                   "candidate (AdaFace validation_lq)",
        **cells, "cmc": curve.tolist()})
    lines = [
        "# TinyFace identification",
        "",
        f"{counts['Probe']} probes against {counts['Gallery_Match']} gallery matches + "
        f"{counts['Gallery_Distractor']} distractors ({aligned_folder(root)}); "
        f"{'flip-fused' if flip else 'unflipped'} normalised embeddings, inner product, "
        "AdaFace's validation_lq ranking (each gallery image a candidate).",
        "",
        "| rank | accuracy |",
        "| --- | --- |",
        *[f"| {k} | {100 * cells[f'tinyface_r{k}']:.2f} % |" for k in REPORTED_RANKS],
        "",
        "Figures: cmc.png (data in cmc.csv).",
    ]
    write_text_atomically("\n".join(lines) + "\n", out_dir / "report.md")
    return cells
