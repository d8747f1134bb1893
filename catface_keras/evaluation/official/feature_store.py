"""Embeddings of a benchmark's images, streamed to disk in chunks so a killed run resumes.

`FeatureExtractor.features(key, count, load_images, flip, normalize)` embeds
images `0 .. count-1` through `catface_keras.evaluation.features.extract_features`
(the computation behind `catface evaluate`), `chunk_size` images at a time.
Each finished chunk is written atomically to `FOLDER/<name>.parts/NNNNNN.npz`;
when all are there they are joined into `FOLDER/<name>.npy` (embeddings),
`<name>.norms.npy` (and `<name>.logits.npy` for a model with attribute outputs),
each written atomically, and the parts are removed. `FOLDER/<name>.json`
records what the numbers depend on (the model file, its input size, the
precision it computes in, the count, flip, normalize); a run that finds the same record reuses the saved
chunks or the joined files and embeds only what is missing, a different
record starts afresh.

`<name>` is the key, plus `-noflip` without flip and `-unnormalized` without
normalisation, so the variants of one benchmark never mix.
"""

import json
import os
import pathlib
import shutil

import numpy as np

from catface_keras.atomic_files import write_atomically, write_text_atomically
from catface_keras.progress import progress

DEFAULT_CHUNK_SIZE = 2048


def feature_file_name(key, flip=True, normalize=True):
    """`key` plus `-noflip` / `-unnormalized` for the non-default settings."""
    return key + ("" if flip else "-noflip") + ("" if normalize else "-unnormalized")


def model_fingerprint(path):
    """What identifies a model file's version: its absolute path, size and modification time."""
    stat = os.stat(path)
    return {"path": str(pathlib.Path(path).resolve()), "bytes": stat.st_size,
            "modified_ns": stat.st_mtime_ns}


def _save_npy(array, path):
    def write(temporary):
        with open(temporary, "wb") as handle:
            np.save(handle, array)

    write_atomically(path, write)


def _save_chunk(path, embeddings, norms, logits):
    def write(temporary):
        with open(temporary, "wb") as handle:
            arrays = {"embeddings": embeddings, "norms": norms}
            if logits is not None:
                arrays["logits"] = logits
            np.savez(handle, **arrays)

    write_atomically(path, write)


class FeatureExtractor:
    """Embeds benchmark images with one model, caching the results under `folder`.

    Args:
        model: a loaded model (`catface_keras.models.loading.load_model`).
        folder: where the feature files go (created), one folder per model.
        fingerprint: a JSON-able dict identifying the model's weights
            (`model_fingerprint(path)`); features saved with another are recomputed.
        batch_size: images per model call.
        chunk_size: images embedded and saved together; a killed run loses at
            most one chunk.
        stream: where progress lines go (default stdout).
        precision: what `model` computes in (`inference_precision.resolve_precision`).
        reference: the same network at float32, for a `model` at another precision:
            the first images this extractor embeds are embedded by both, and their
            cosine (`inference_precision.embedding_agreement`) kept in `agreement`.
    """

    def __init__(self, model, folder, fingerprint, batch_size=64,
                 chunk_size=DEFAULT_CHUNK_SIZE, stream=None, precision="float32",
                 reference=None):
        if batch_size < 1 or chunk_size < 1:
            raise ValueError("`batch_size` and `chunk_size` must be >= 1. Received: "
                             f"batch_size={batch_size}, chunk_size={chunk_size}")
        self.model = model
        self.folder = pathlib.Path(folder)
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.stream = stream
        self.precision = precision
        self.reference = reference
        self.agreement = None
        self.embedded = 0  # images run through the model by this extractor (resume tests)

    def _record(self, count, flip, normalize):
        return {"model": self.fingerprint, "image_size": int(self.model.image_size),
                "precision": self.precision, "count": int(count), "flip": bool(flip), "normalize": bool(normalize)}

    def features(self, key, count, load_images, flip=True, normalize=True):
        """`(count, D)` embeddings of images `0 .. count-1` (see the module docstring).

        Args:
            key: the benchmark's name for this image set (a file name stem).
            count: number of images.
            load_images: `indices (n,) int -> (n, S, S, 3)` uint8 RGB aligned faces;
                resized here to the model's input when `S` differs.
            flip: add the mirror image's embedding (float64).
            normalize: L2-normalise the (fused) embeddings.

        Returns:
            `catface_keras.evaluation.features.Features`; the embeddings and norms
            are read-only memory maps of the saved files.
        """
        from catface_keras.evaluation.features import Features

        name = feature_file_name(key, flip, normalize)
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = {part: self.folder / f"{name}{suffix}" for part, suffix in
                 (("embeddings", ".npy"), ("norms", ".norms.npy"), ("logits", ".logits.npy"),
                  ("record", ".json"), ("parts", ".parts"))}
        record = self._record(count, flip, normalize)
        if not self._matches(paths["record"], record):
            for part in ("embeddings", "norms", "logits", "parts"):
                _remove(paths[part])
            write_text_atomically(json.dumps(record, indent=2) + "\n", paths["record"])
        if not (paths["embeddings"].is_file() and paths["norms"].is_file()):
            self._embed_chunks(key, count, load_images, flip, normalize, paths)
        embeddings = np.load(paths["embeddings"], mmap_mode="r")
        norms = np.load(paths["norms"], mmap_mode="r")
        if len(embeddings) != count or len(norms) != count:
            raise ValueError(f"{paths['embeddings']} holds {len(embeddings)} rows for {count} "
                             "images: delete it to embed again")
        logits = np.load(paths["logits"]) if paths["logits"].is_file() else None
        return Features(embeddings=embeddings, norms=norms, attribute_logits=logits)

    @staticmethod
    def _matches(path, record):
        try:
            return json.loads(pathlib.Path(path).read_text()) == record
        except (OSError, ValueError):
            return False

    def _embed_chunks(self, key, count, load_images, flip, normalize, paths):
        from catface_keras.data.resizing import resize_faces
        from catface_keras.evaluation.features import extract_features

        parts = paths["parts"]
        parts.mkdir(exist_ok=True)
        starts = range(0, count, self.chunk_size)
        chunk_files = [parts / f"{start // self.chunk_size:06d}.npz" for start in starts]
        done = sum(min(self.chunk_size, count - start)
                   for start, file in zip(starts, chunk_files) if file.is_file())
        size = int(self.model.image_size)
        with progress(count, f"embedding {key}", stream=self.stream) as bar:
            bar.update(done)
            for start, file in zip(starts, chunk_files):
                if file.is_file():
                    continue
                indices = np.arange(start, min(start + self.chunk_size, count))
                images = np.asarray(load_images(indices))
                if images.shape[0] != len(indices) or images.ndim != 4:
                    raise ValueError(f"load_images gave {images.shape} for {len(indices)} "
                                     f"images of {key}")
                images = resize_faces(images, size)
                if self.reference is not None and self.agreement is None and len(images):
                    self._measure_agreement(images[:self.batch_size])
                features = extract_features(self.model, images, self.batch_size, flip=flip,
                                            normalize=normalize)
                _save_chunk(file, features.embeddings, features.norms,
                            features.attribute_logits)
                self.embedded += len(indices)
                bar.update(len(indices))
        if count == 0:
            empty = extract_features(self.model, np.zeros((0, size, size, 3), np.uint8))
            loaded = [{"embeddings": empty.embeddings, "norms": empty.norms,
                       "logits": empty.attribute_logits}]
        else:
            loaded = [dict(np.load(file)) for file in chunk_files]
        _save_npy(np.concatenate([part["embeddings"] for part in loaded]), paths["embeddings"])
        if loaded[0].get("logits") is not None:
            _save_npy(np.concatenate([part["logits"] for part in loaded]), paths["logits"])
        # The norms last: embeddings and norms on disk mean the set is complete.
        _save_npy(np.concatenate([part["norms"] for part in loaded]), paths["norms"])
        _remove(parts)

    def _measure_agreement(self, images):
        from catface_keras.models.inference_precision import (
            agreement_text,
            embedding_agreement,
        )

        self.agreement = embedding_agreement(self.reference, self.model, images)
        print(f"{self.precision}: {agreement_text(self.agreement)}", file=self.stream,
              flush=True)


def _remove(path):
    path = pathlib.Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
