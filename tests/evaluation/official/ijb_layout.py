"""A small IJB set in insightface's official layout, and a stand-in feature extractor.

Shared by the IJB tests (`from evaluation.official.ijb_layout import ...`).
"""

import cv2
import numpy as np

from catface_keras.landmark_alignment import ARCFACE_TEMPLATE
from catface_keras.data.synthetic import render_face
from catface_keras.evaluation.features import Features

CANVAS = 150


class ProjectionExtractor:
    """`features(...)` of the benchmark contract: a fixed random projection of the pixels."""

    def __init__(self, dim=8, seed=0):
        self.weights = np.random.default_rng(seed).standard_normal((112 * 112 * 3, dim)) / 100
        self.calls = []
        self.images = None
        self.embeddings = None

    def features(self, key, count, load_images, flip, normalize):
        self.calls.append((key, count, flip, normalize))
        images = np.concatenate([load_images(np.arange(s, min(s + 5, count)))
                                 for s in range(0, count, 5)])
        pixels = images.reshape(count, -1).astype(np.float64) / 255
        embeddings = pixels @ self.weights
        if flip:
            mirrored = images[:, :, ::-1].reshape(count, -1).astype(np.float64) / 255
            embeddings += mirrored @ self.weights
        if normalize:
            embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        self.images, self.embeddings = images, embeddings
        return Features(embeddings=embeddings, norms=np.linalg.norm(embeddings, axis=1),
                        attribute_logits=None)


def similarity(scale, degrees, tx, ty):
    angle = np.radians(degrees)
    return np.array([[scale * np.cos(angle), -scale * np.sin(angle), tx],
                     [scale * np.sin(angle), scale * np.cos(angle), ty]])


def write_ijb(root, name="ijbc", one_to_n=True, seed=0):
    """A small set in insightface's layout; returns what the files say, as Python lists.

    Identities 0-3 (subjects 10-13), two templates each; a template has two media,
    the first with three frames, the second with one photo. Each loose crop is a
    synthetic face warped by a known similarity onto a 150 px canvas; its
    landmarks are the ArcFace template points moved by that warp.
    """
    rng = np.random.default_rng(seed)
    folder = root / name.upper()
    (folder / "meta").mkdir(parents=True)
    (folder / "loose_crop").mkdir()
    images, templates, originals = [], {}, {}
    number = 0
    for identity in range(4):
        for copy in range(2):
            template = 100 * (identity + 1) + copy
            templates[template] = 10 + identity
            for media, frames in ((1000 * template + 1, 3), (1000 * template + 2, 1)):
                for _ in range(frames):
                    number += 1
                    face = render_face(identity, number, image_size=112)
                    warp = similarity(rng.uniform(0.8, 1.1), rng.uniform(-25, 25),
                                      rng.uniform(10, 30), rng.uniform(10, 30))
                    crop = cv2.warpAffine(cv2.cvtColor(face, cv2.COLOR_RGB2BGR), warp,
                                          (CANVAS, CANVAS), borderValue=(128, 128, 128))
                    image_name = f"{number}.jpg"
                    cv2.imwrite(str(folder / "loose_crop" / image_name), crop,
                                [cv2.IMWRITE_JPEG_QUALITY, 98])
                    landmarks = ARCFACE_TEMPLATE @ warp[:, :2].T + warp[:, 2]
                    images.append((image_name, template, media, landmarks,
                                   round(float(rng.uniform(0.5, 1.0)), 3)))
                    originals[image_name] = face
    with open(folder / "meta" / f"{name}_face_tid_mid.txt", "w") as handle:
        for image_name, template, media, _, _ in images:
            handle.write(f"{image_name} {template} {media}\n")
    with open(folder / "meta" / f"{name}_name_5pts_score.txt", "w") as handle:
        for image_name, _, _, landmarks, score in images:
            points = " ".join(f"{v:.3f}" for v in landmarks.reshape(-1))
            handle.write(f"{image_name} {points} {score}\n")
    ids = sorted(templates)
    pairs = [(a, b, int(templates[a] == templates[b]))
             for i, a in enumerate(ids) for b in ids[i + 1 :]]
    with open(folder / "meta" / f"{name}_template_pair_label.txt", "w") as handle:
        handle.writelines(f"{a} {b} {label}\n" for a, b, label in pairs)
    if one_to_n:
        first, second = ("G1", "G2") if name == "ijbc" else ("S1", "S2")
        header = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n"
        sets = {f"1N_gallery_{first}": [100, 200], f"1N_gallery_{second}": [300, 400],
                "1N_probe_mixed": [101, 201, 301, 401]}
        for stem, members in sets.items():
            with open(folder / "meta" / f"{name}_{stem}.csv", "w") as handle:
                handle.write(header)
                for template in members:
                    for image in images:
                        if image[1] == template:
                            handle.write(f"{template},{templates[template]},img/{image[0]}\n")
    return {"images": images, "pairs": pairs, "subjects": templates, "originals": originals}
