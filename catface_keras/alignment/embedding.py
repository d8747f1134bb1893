"""Embeddings of aligned faces, computed as `catface evaluate` computes them.

The embedding is the flip-fused one of the evaluation protocol (the model's
embedding of the face plus that of its mirror image, L2-normalised), so that
a threshold calibrated by `catface evaluate` applies to its cosine scores.
The quality score is the AdaFace feature norm: the norm of the model's
unnormalised embedding of the face itself (as the serving signature's
`embedding_norm`).
"""

import dataclasses

import numpy as np

from catface_keras.alignment.photos import align_photo, read_photo
from catface_keras.data.decoding import ImageDecodeError, square_resize


def _model_input(faces, image_size):
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.shape[1] != faces.shape[2]:
        raise ValueError(
            f"`faces` must be (N, S, S, 3) RGB. Received: faces.shape={faces.shape}"
        )
    if len(faces) == 0:
        return np.zeros((0, image_size, image_size, 3), np.float32)
    if faces.shape[1] != image_size:
        # As `catface evaluate` reads an image folder (`decode_image(data, image_size)`).
        faces = np.stack([square_resize(face, image_size) for face in faces.astype(np.uint8)])
    return faces.astype(np.float32)


def embed_faces(model, faces, batch_size=64):
    """Flip-fused unit embeddings and AdaFace feature norms of aligned faces.

    Args:
        model: a CATFace model (stage 1 or 2): called on float RGB in [0, 255]
            `(batch, S, S, 3)`, S = `model.image_size`, it returns a dict with
            `embedding` `(batch, D)`.
        faces: `(N, size, size, 3)` uint8 RGB aligned faces; resized to S when
            `size != S`.
        batch_size: faces per model call.

    Returns:
        `(embeddings, norms)`: `(N, D)` float32 unit rows and `(N,)` float32.
    """
    images = _model_input(faces, int(model.image_size))
    if len(images) == 0:
        probe = np.zeros((1, *images.shape[1:]), np.float32)
        dim = model.predict(probe, verbose=0)["embedding"].shape[-1]
        return np.zeros((0, dim), np.float32), np.zeros((0,), np.float32)
    raw = np.asarray(model.predict(images, batch_size=batch_size, verbose=0)["embedding"],
                     np.float32)
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    flipped = np.asarray(model.predict(mirrored, batch_size=batch_size, verbose=0)["embedding"],
                         np.float32)
    fused = raw + flipped
    fused /= np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)
    return fused, np.linalg.norm(raw, axis=1)


def cosine_score(first, second):
    """Cosine similarity of two embedding vectors."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    denominator = max(np.linalg.norm(first) * np.linalg.norm(second), 1e-12)
    return float(first @ second / denominator)


@dataclasses.dataclass(frozen=True)
class PhotoEmbeddings:
    """Embeddings of the faces in a list of photos, one row per face.

    Attributes:
        embeddings: `(N, D)` float32 unit rows (flip-fused).
        norms: `(N,)` float32 AdaFace feature norms (quality).
        files: `N` photo paths, as given.
        face_index: `(N,)` int32: which face of its photo (0: the largest).
        boxes: `(N, 4)` float32 `(x1, y1, x2, y2)` in photo pixels; NaN for a
            photo taken as an aligned face.
        confidence: `(N,)` float32 detector score of the face and its landmarks;
            NaN for an aligned face.
        landmarks: `(N, 5, 2)` float32 in photo pixels; NaN for an aligned face.
        skipped: `[(path, reason)]` of photos with no face or that do not decode.
    """

    embeddings: np.ndarray
    norms: np.ndarray
    files: tuple
    face_index: np.ndarray
    boxes: np.ndarray
    confidence: np.ndarray
    landmarks: np.ndarray
    skipped: tuple


def embed_photos(paths, model, detector=None, all_faces=False, batch_size=64):
    """Reads photos, aligns them with `detector` (or takes them as aligned faces), embeds.

    Args:
        paths: photo files.
        model: a CATFace model (see `embed_faces`).
        detector: an object with `detect(rgb uint8) -> [DetectedFace]`; None takes
            every photo as an aligned face (a non-square one is centre-cropped).
        all_faces: with a detector, embed every face, not only the largest.

    Returns:
        A `PhotoEmbeddings`.
    """
    image_size = int(model.image_size)
    crops, files, face_index, boxes, confidence, landmarks, skipped = [], [], [], [], [], [], []
    for path in paths:
        try:
            image = read_photo(path)
        except (OSError, ImageDecodeError) as error:
            skipped.append((str(path), f"undecodable: {error}"))
            continue
        if detector is None:
            crops.append(square_resize(image, image_size))
            files.append(str(path))
            face_index.append(0)
            boxes.append(np.full(4, np.nan))
            confidence.append(np.nan)
            landmarks.append(np.full((5, 2), np.nan))
            continue
        aligned = align_photo(image, detector, all_faces)
        if not aligned:
            skipped.append((str(path), "no face found"))
        for index, face in enumerate(aligned):
            crops.append(square_resize(face.image, image_size))
            files.append(str(path))
            face_index.append(index)
            boxes.append(face.face.box)
            confidence.append(face.face.confidence)
            landmarks.append(face.face.landmarks)
    faces = np.stack(crops) if crops else np.zeros((0, image_size, image_size, 3), np.uint8)
    embeddings, norms = embed_faces(model, faces, batch_size)
    return PhotoEmbeddings(
        embeddings=embeddings,
        norms=norms,
        files=tuple(files),
        face_index=np.asarray(face_index, np.int32),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        confidence=np.asarray(confidence, np.float32),
        landmarks=np.asarray(landmarks, np.float32).reshape(-1, 5, 2),
        skipped=tuple(skipped),
    )
