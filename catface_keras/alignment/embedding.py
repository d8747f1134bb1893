"""Embeddings of aligned faces, computed as `catface evaluate` computes them.

The embedding is the flip-fused one of the evaluation protocol, computed by the
same function (`evaluation.features.extract_features`): the model's embedding
of the face plus that of its mirror image, added in float64 and L2-normalised,
so that a threshold calibrated by `catface evaluate` applies to its cosine
scores. The quality score is the AdaFace feature norm: the norm of the model's
unnormalised embedding of the face itself (as the serving signature's
`embedding_norm`).
"""

import dataclasses

import numpy as np

from catface_keras.alignment.photos import align_photo, read_photo
from catface_keras.data.decoding import ImageDecodeError
from catface_keras.data.resizing import resize_faces, square_resize
from catface_keras.evaluation.features import extract_features

# Faces decoded and aligned ahead of the model: memory stays bounded on large folders.
_FACES_IN_MEMORY = 1024


def embed_faces(model, faces, batch_size=64):
    """Flip-fused unit embeddings and AdaFace feature norms of aligned faces.

    Args:
        model: a CATFace model (stage 1 or 2) or an imported iResNet: called on
            float RGB in [0, 255] `(batch, S, S, 3)`, S = `model.image_size`, it
            returns a dict with `embedding` `(batch, D)`.
        faces: `(N, size, size, 3)` uint8 RGB aligned faces; resized to S when
            `size != S` (`data.resizing`, as `catface evaluate` resizes).
        batch_size: faces per model call.

    Returns:
        `(embeddings, norms)`: `(N, D)` float64 unit rows and `(N,)` float64.
    """
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.shape[1] != faces.shape[2]:
        raise ValueError(
            f"`faces` must be (N, S, S, 3) RGB. Received: faces.shape={faces.shape}"
        )
    image_size = int(model.image_size)
    if len(faces) == 0:
        faces = np.zeros((0, image_size, image_size, 3), np.uint8)
    features = extract_features(model, resize_faces(faces, image_size), batch_size)
    return features.embeddings, features.norms


@dataclasses.dataclass(frozen=True)
class PhotoEmbeddings:
    """Embeddings of the faces in a list of photos, one row per face.

    Attributes:
        embeddings: `(N, D)` float64 unit rows (flip-fused).
        norms: `(N,)` float64 AdaFace feature norms (quality).
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
    rows = {"embeddings": [], "norms": [], "files": [], "face_index": [], "boxes": [],
            "confidence": [], "landmarks": []}
    crops, skipped = [], []

    def embed_pending():
        if crops:
            embeddings, norms = embed_faces(model, np.stack(crops), batch_size)
            rows["embeddings"].append(embeddings)
            rows["norms"].append(norms)
            crops.clear()

    def add(crop, path, index, box, confidence, landmarks):
        crops.append(square_resize(crop, image_size))
        rows["files"].append(str(path))
        rows["face_index"].append(index)
        rows["boxes"].append(box)
        rows["confidence"].append(confidence)
        rows["landmarks"].append(landmarks)
        if len(crops) >= _FACES_IN_MEMORY:
            embed_pending()

    for path in paths:
        try:
            image = read_photo(path)
        except (OSError, ImageDecodeError) as error:
            skipped.append((str(path), f"undecodable: {error}"))
            continue
        if detector is None:
            add(image, path, 0, np.full(4, np.nan), np.nan, np.full((5, 2), np.nan))
            continue
        aligned = align_photo(image, detector, all_faces)
        if not aligned:
            skipped.append((str(path), "no face found"))
        for index, face in enumerate(aligned):
            add(face.image, path, index, face.face.box, face.face.confidence, face.face.landmarks)
    embed_pending()
    if not rows["embeddings"]:
        embeddings, norms = embed_faces(model, np.zeros((0, image_size, image_size, 3), np.uint8))
        rows["embeddings"], rows["norms"] = [embeddings], [norms]
    return PhotoEmbeddings(
        embeddings=np.concatenate(rows["embeddings"]),
        norms=np.concatenate(rows["norms"]),
        files=tuple(rows["files"]),
        face_index=np.asarray(rows["face_index"], np.int32),
        boxes=np.asarray(rows["boxes"], np.float32).reshape(-1, 4),
        confidence=np.asarray(rows["confidence"], np.float32),
        landmarks=np.asarray(rows["landmarks"], np.float32).reshape(-1, 5, 2),
        skipped=tuple(skipped),
    )
