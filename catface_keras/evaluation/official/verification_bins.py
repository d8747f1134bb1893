"""insightface's verification sets (`lfw.bin`, `cfp_fp.bin`, ...) by insightface's protocol.

The pairs of each `.bin` are scored by `catface_keras.evaluation.verification`
(`verification_summary`): squared L2 distances of the flip-fused, normalised
embeddings, 10 contiguous folds, the threshold of the 0.01 grid on [0, 4)
best on nine folds applied to the tenth; the mean accuracy is the table's
cell. TAR at FAR, AUC and EER come with it in the report.
"""

import pathlib

import numpy as np

from catface_keras.atomic_files import write_atomically, write_text_atomically
from catface_keras.evaluation.official.table import write_json

# The five of the paper's table first, then the two other sets insightface ships.
SETS = ("lfw", "cfp_fp", "cplfw", "agedb_30", "calfw", "cfp_ff", "vgg2_fp")
TITLES = {"lfw": "LFW", "cfp_fp": "CFP-FP", "cplfw": "CPLFW", "agedb_30": "AgeDB-30",
          "calfw": "CALFW", "cfp_ff": "CFP-FF", "vgg2_fp": "VGG2-FP"}


def bin_path(name, root):
    return pathlib.Path(root) / f"{name}.bin"


def find(root):
    """The sets of `SETS` whose `<name>.bin` is a file directly under `root`."""
    return [name for name in SETS if bin_path(name, root).is_file()]


def check(name, root, **options):
    """Reads the `.bin`'s pickle and pair list (not the images): a damaged file stops
    the run before any model is loaded."""
    _items(name, root)


def _items(name, root):
    from catface_keras.data.insightface_bin import read_verification_items

    return read_verification_items(str(bin_path(name, root)))


def _decoder(path, bins):
    from catface_keras.data.decoding import ImageDecodeError, decode_image

    def load_images(indices):
        images = []
        for index in indices:
            try:
                image = decode_image(bins[index])
            except ImageDecodeError as error:
                raise ValueError(f"{path}: image {index} does not decode: {error}") from None
            if images and image.shape != images[0].shape:
                raise ValueError(f"{path}: image {index} is {image.shape[1]}x{image.shape[0]}, "
                                 f"image {indices[0]} is {images[0].shape[1]}x"
                                 f"{images[0].shape[0]}")
            images.append(image)
        return np.stack(images)

    return load_images


def run(name, root, extractor, out_dir, flip=True, label="model", **options):
    """Scores the pairs of `<root>/<name>.bin` and writes `report.md`, `results.json`,
    `roc.png` and `scores.png` to `out_dir`.

    Returns:
        `{name: accuracy, name + "_std": std}` (fractions).
    """
    from catface_keras.evaluation.plots import plot_roc_curves, plot_score_histograms
    from catface_keras.evaluation.verification import verification_summary

    path = bin_path(name, root)
    bins, issame = _items(name, root)
    features = extractor.features(name, len(bins), _decoder(path, bins), flip=flip,
                                  normalize=True)
    embeddings = np.asarray(features.embeddings)
    summary, scores = verification_summary(embeddings[0::2], embeddings[1::2], issame)
    out_dir = pathlib.Path(out_dir)
    by_model = {label: {name: (scores, issame)}}
    write_atomically(out_dir / "roc.png", lambda file: plot_roc_curves(
        by_model, file, f"ROC, {TITLES[name]}"))
    write_atomically(out_dir / "scores.png", lambda file: plot_score_histograms(
        by_model, file, f"Cosine scores, {TITLES[name]}"))
    write_json(out_dir / "results.json",
               {"benchmark": name, "file": str(path), "flip": bool(flip), **summary})
    write_text_atomically(_report(name, path, summary, flip), out_dir / "report.md")
    return {name: summary["accuracy"], f"{name}_std": summary["accuracy_std"]}


def _report(name, path, summary, flip):
    from catface_keras.evaluation.roc import FAR_DECADES, far_key

    lines = [
        f"# {TITLES[name]} ({path})",
        "",
        f"{summary['num_pairs']} pairs ({summary['num_genuine']} genuine, "
        f"{summary['num_impostor']} impostor), {'flip-fused' if flip else 'unflipped'} "
        "embeddings; insightface's 10-fold accuracy (contiguous folds, squared-L2 threshold "
        "grid 0, 0.01, ..., 3.99).",
        "",
        f"- accuracy: {100 * summary['accuracy']:.2f} % +- {100 * summary['accuracy_std']:.2f}",
        f"- AUC: {summary['auc']:.4f}, EER: {100 * summary['eer']:.2f} %",
        "",
        "| FAR | TAR |",
        "| --- | --- |",
    ]
    for far in FAR_DECADES:
        tar = summary[far_key(far)]
        lines.append(f"| {far:g} | {'-' if tar is None else f'{100 * tar:.2f} %'} |")
    lines += ["", "Figures: roc.png, scores.png.", ""]
    lines += [f"Note: {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"
