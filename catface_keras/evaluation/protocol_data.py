"""The images of an evaluation and the protocols defined on them.

An `EvaluationData` holds one array of images and, for each protocol, index
arrays into it, so that every image is embedded once per model and condition
(clean, degraded) whichever protocols use it. Sources:

- `synthetic_evaluation_data`: the built-in procedural faces of identities no
  demo or config-sized training run uses (10,000 and up);
- `evaluation_data`: the faces a face source of `catface_keras.data.registry`
  read from files (this package never reads them itself);
- `face_arrays_data`: a `FaceArrays` in memory (the trainer's held-out faces).
"""

import dataclasses
import pathlib

import numpy as np

from catface_keras.evaluation.identification import DISTRACTOR_LABEL
from catface_keras.evaluation.templates import template_pairs
from catface_keras.evaluation.verification import sample_verification_pairs
from catface_keras.progress import track

# SCFace-style probe groups: (name, side of the low-resolution copy as a share
# of the image side, turbulence D/r0). Farther cameras see fewer pixels through
# more air; the levels span the training mix's range.
SYNTHETIC_DISTANCES = (
    ("distance_1", 1 / 2, 0.25),
    ("distance_2", 1 / 3, 0.5),
    ("distance_3", 1 / 4, 1.0),
)

# Identity numbers of the synthetic evaluation faces start here, far above the
# demo's 300 identities, so that a model trained on the built-in faces never saw them.
SYNTHETIC_FIRST_IDENTITY = 10_000

@dataclasses.dataclass(frozen=True)
class PairList:
    """Pairs of indices with a genuine flag: `first`, `second` `(P,)` ints, `same` `(P,)` bools,
    and optionally `folds` `(P,)` ints, the pair's fold of the 10-fold accuracy (default:
    contiguous folds in pair order)."""

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    folds: np.ndarray = None


@dataclasses.dataclass(frozen=True)
class TemplateSet:
    """Templates of images and pairs of templates.

    Attributes:
        image_indices: `(M,)` rows of `EvaluationData.images` in some template.
        template_ids: `(M,)` the template of each of those images.
        pairs: a `PairList` of template ids.
    """

    image_indices: np.ndarray
    template_ids: np.ndarray
    pairs: PairList


@dataclasses.dataclass(frozen=True)
class IdentificationSet:
    """Probes against a gallery (closed set: every probe has a mate).

    Attributes:
        gallery: `(G,)` image rows; `gallery_labels` `(G,)` their identities,
            `DISTRACTOR_LABEL` for distractors.
        probes: `(Q,)` image rows; `probe_labels` `(Q,)` their identities.
        probe_groups: `(Q,)` group names (SCFace distances) or None.
    """

    gallery: np.ndarray
    gallery_labels: np.ndarray
    probes: np.ndarray
    probe_labels: np.ndarray
    probe_groups: np.ndarray = None


@dataclasses.dataclass(frozen=True)
class AttributeSet:
    """`image_indices` `(M,)`, `labels` `(M, A)` ints in {-1, 0, 1}, `names` `A` strings."""

    image_indices: np.ndarray
    labels: np.ndarray
    names: tuple


@dataclasses.dataclass(frozen=True)
class EvaluationData:
    """Images and the protocols that index them.

    Attributes:
        source: what the data is (`"synthetic"`, a path).
        images: `(N, S, S, 3)` uint8 RGB.
        verification: `PairList` of image rows, or None.
        templates: `TemplateSet`, or None.
        identification: dict name -> `IdentificationSet` (e.g.
            `tinyface_style`, `scface_style`); empty when not available.
        attributes: `AttributeSet`, or None.
        info: dict of counts and notes for the results (JSON-safe).
    """

    source: str
    images: np.ndarray
    verification: PairList = None
    templates: TemplateSet = None
    identification: dict = dataclasses.field(default_factory=dict)
    attributes: AttributeSet = None
    info: dict = dataclasses.field(default_factory=dict)

    def protocols(self):
        """Names of the protocols this data defines."""
        available = {
            "verification": self.verification is not None,
            "templates": self.templates is not None,
            "identification": bool(self.identification),
            "attributes": self.attributes is not None,
        }
        return tuple(name for name, present in available.items() if present)


def _identity_templates(identities, indices, seed):
    """Each identity's images cut in two templates (one if it has one image)."""
    template_ids = np.empty(len(indices), np.int64)
    template_identities = []
    for identity in np.unique(identities):
        members = np.flatnonzero(identities == identity)
        half = (len(members) + 1) // 2
        for part in (members[:half], members[half:]):
            if len(part):
                template_ids[part] = len(template_identities)
                template_identities.append(identity)
    first, second, same = template_pairs(np.asarray(template_identities), seed=seed)
    return TemplateSet(indices, template_ids, PairList(first, second, same))


def protocols_from_identities(images, identities, attributes=None, attribute_names=None,
                              distractors=None, num_pairs=3000, seed=0, source="", info=None):
    """Every protocol built from labelled images of several people.

    - verification: `num_pairs` genuine and as many impostor pairs
      (`sample_verification_pairs`), each kind shuffled by `seed`, then
      alternating, so that every contiguous fold of the 10-fold accuracy is
      balanced and a random sample of the identities;
    - templates: each identity's images in order, cut into two templates;
      all template pairs (`template_pairs`);
    - identification `tinyface_style`: the first image of each identity is
      its gallery image, the others are probes; `distractors` join the gallery;
    - attributes, when `attributes` is given.

    Args:
        images: `(N, S, S, 3)` uint8.
        identities: `(N,)` int labels.
        attributes: optional `(N, A)` ints in {-1, 0, 1}.
        attribute_names: `A` names, with `attributes`.
        distractors: optional `(M, S, S, 3)` uint8 images of other people.
        num_pairs: verification pairs of each kind.
        seed: pair sampling and shuffling seed.

    Returns:
        An `EvaluationData`; `images` is `images` followed by `distractors`.
    """
    images = np.asarray(images)
    identities = np.asarray(identities)
    if len(identities) != len(images) or len(np.unique(identities)) < 2:
        raise ValueError(
            "`identities` must label every image and name at least two people. "
            f"Received: {len(images)} images, {len(identities)} labels, "
            f"{len(np.unique(identities))} identities"
        )
    indices = np.arange(len(images))
    first, second, same = sample_verification_pairs(identities, num_pairs, seed)
    # Shuffled, or each fold would hold the genuine pairs of a few identities;
    # alternating, so that each fold is balanced as in insightface's .bin lists.
    rng = np.random.default_rng([seed, 2])
    genuine = rng.permutation(np.flatnonzero(same))
    impostor = rng.permutation(np.flatnonzero(~same))
    both = min(len(genuine), len(impostor))
    order = np.concatenate([np.stack([genuine[:both], impostor[:both]], axis=1).ravel(),
                            genuine[both:], impostor[both:]])
    verification = PairList(first[order], second[order], same[order])
    templates = _identity_templates(identities, indices, seed)
    first_image = np.zeros(len(images), bool)
    first_image[[np.flatnonzero(identities == i)[0] for i in np.unique(identities)]] = True
    gallery, probes = indices[first_image], indices[~first_image]
    gallery_labels = identities[gallery]
    num_distractors = 0
    if distractors is not None and len(distractors):
        num_distractors = len(distractors)
        gallery = np.concatenate([gallery, len(images) + np.arange(num_distractors)])
        distractor_labels = np.full(num_distractors, DISTRACTOR_LABEL)
        gallery_labels = np.concatenate([gallery_labels, distractor_labels])
        images = np.concatenate([images, distractors])
    identification = {}
    if len(probes):
        identification["tinyface_style"] = IdentificationSet(
            gallery, gallery_labels, probes, identities[probes]
        )
    attribute_set = None
    if attributes is not None:
        attribute_set = AttributeSet(indices, np.asarray(attributes), tuple(attribute_names))
    counts = {
        "num_images": int(len(images)),
        "num_identities": int(len(np.unique(identities))),
        "num_distractor_images": num_distractors,
    }
    return EvaluationData(
        source=source,
        images=images,
        verification=verification,
        templates=templates,
        identification=identification,
        attributes=attribute_set,
        info={**counts, **(info or {})},
    )


def _render_synthetic(identity_ids, images_per_identity, image_size, seed, description):
    from catface_keras.data.synthetic import make_synthetic_faces

    chunks = [identity_ids[start : start + 16] for start in range(0, len(identity_ids), 16)]
    parts = [
        make_synthetic_faces(chunk, images_per_identity, image_size, seed, relabel=False)
        for chunk in track(chunks, len(chunks), description, unit="chunk")
    ]
    return (
        np.concatenate([part.images for part in parts]),
        np.concatenate([part.identities for part in parts]),
        np.concatenate([part.attributes for part in parts]),
        parts[0].attribute_names,
    )


def distance_probes(images, levels, seed):
    """SCFace-style probes: each image degraded at its distance.

    Args:
        images: `(N, S, S, 3)` uint8.
        levels: `(N,)` ints, indices into `SYNTHETIC_DISTANCES`.
        seed: int.

    Returns:
        `(N, S, S, 3)` uint8: each image shrunk to its distance's share of the
        side (area) and enlarged back (bilinear), then blurred and warped by
        turbulence of its distance's D/r0.
    """
    from catface_keras import degrade

    size = images.shape[1]
    probes = np.empty_like(images)
    jobs = [(level, start) for level in range(len(SYNTHETIC_DISTANCES))
            for start in range(0, int(np.sum(levels == level)), 256)]
    for level, start in track(jobs, len(jobs), "degrading probes by distance", unit="batch"):
        _, share, d_over_r0 = SYNTHETIC_DISTANCES[level]
        rows = np.flatnonzero(levels == level)[start : start + 256]
        batch = degrade.low_resolution(images[rows], round(size * share))
        batch = degrade.turbulence(batch, degrade.element_seed([seed, 2 + level], start), d_over_r0)
        probes[rows] = np.asarray(batch)
    return probes


def synthetic_evaluation_data(num_identities=200, images_per_identity=8, num_distractors=200,
                              image_size=112, seed=0, num_pairs=3000,
                              first_identity=SYNTHETIC_FIRST_IDENTITY, pair_seed=1):
    """All protocols on the built-in synthetic faces of unseen identities.

    `protocols_from_identities` on `num_identities` people with
    `images_per_identity` images each and one image of each of
    `num_distractors` other people as distractors, plus the SCFace-style
    identification `scface_style`: gallery = each person's first image (the
    mugshot), probes = their other images, probe `j` (from 1) degraded at
    distance `(j - 1) % 3 + 1` of `SYNTHETIC_DISTANCES`.

    Args:
        num_identities: int >= 2.
        images_per_identity: int >= 2 (>= 4 for every distance to have probes).
        num_distractors: int >= 0.
        image_size: int >= 32, the side the faces are drawn at.
        seed: the synthetic-face seed (0, the demo's).
        pair_seed: the pair sampling seed.
        first_identity: identity number of the first person.
    """
    for name, value, low in (("num_identities", num_identities, 2),
                             ("images_per_identity", images_per_identity, 2),
                             ("num_distractors", num_distractors, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
    people = list(range(first_identity, first_identity + num_identities))
    images, identities, attributes, names = _render_synthetic(
        people, images_per_identity, image_size, seed, "drawing faces"
    )
    distractors = None
    if num_distractors:
        others = list(range(people[-1] + 1, people[-1] + 1 + num_distractors))
        distractors = _render_synthetic(others, 1, image_size, seed, "drawing distractors")[0]
    data = protocols_from_identities(
        images, identities, attributes, names, distractors, num_pairs, pair_seed,
        source="synthetic",
        info={
            "synthetic": {
                "num_identities": num_identities,
                "images_per_identity": images_per_identity,
                "num_distractors": num_distractors,
                "image_size": image_size,
                "seed": seed,
                "first_identity": first_identity,
            }
        },
    )
    # SCFace-style probes: the non-first images, each at its distance, appended.
    probes = np.flatnonzero(np.arange(len(identities)) % images_per_identity != 0)
    level = (probes % images_per_identity - 1) % len(SYNTHETIC_DISTANCES)
    probe_images = distance_probes(images[probes], level, seed)
    mugshots = np.flatnonzero(np.arange(len(identities)) % images_per_identity == 0)
    start = len(data.images)
    identification = dict(data.identification)
    identification["scface_style"] = IdentificationSet(
        gallery=mugshots,
        gallery_labels=identities[mugshots],
        probes=start + np.arange(len(probes)),
        probe_labels=identities[probes],
        probe_groups=np.array([SYNTHETIC_DISTANCES[k][0] for k in level]),
    )
    info = dict(data.info, num_images=start + len(probes), num_scface_probe_images=len(probes))
    return dataclasses.replace(
        data,
        images=np.concatenate([data.images, probe_images]),
        identification=identification,
        info=info,
    )


def face_arrays_data(faces, num_pairs=3000, seed=1, source="held-out faces"):
    """`protocols_from_identities` on a `FaceArrays` (images, identities, attributes)."""
    return protocols_from_identities(
        faces.images, faces.identities, faces.attributes, faces.attribute_names,
        num_pairs=num_pairs, seed=seed, source=source,
    )


def evaluation_data(faces, num_pairs=3000, seed=1, source=None):
    """The protocols on the faces a face source read (`catface_keras.data.registry`).

    With a pair list (`faces.pairs`, e.g. an insightface `.bin`) only verification, on those pairs; otherwise `protocols_from_identities`,
    with attributes when the source labelled them.

    Args:
        faces: an `EvaluationFaces`.
        num_pairs, seed: as `protocols_from_identities`.
        source: what the data is (a path), for the results.
    """
    if faces.pairs is not None:
        pairs = faces.pairs
        return EvaluationData(
            source=source, images=np.asarray(faces.images, np.uint8),
            verification=PairList(pairs.first, pairs.second, pairs.same, pairs.folds),
            info=faces.info,
        )
    return protocols_from_identities(
        faces.images, faces.identities, faces.attributes, faces.attribute_names,
        faces.distractors, num_pairs, seed, source=source, info=faces.info,
    )


def pairs_file_data(pairs_file, root, image_size):
    """The `EvaluationData` of a pair list or insightface `.bin` at `image_size`.

    Args:
        pairs_file: a `.bin` (its own images and pairs), or a pair list as `catface
            evaluate --pairs-file` reads (LFW pairs.txt or 'path1 path2 label' lines).
        root: the folder a pair list's paths are relative to (ignored for a `.bin`).
    """
    from catface_keras.data.registry import evaluation_source, face_source

    pairs_file = pathlib.Path(pairs_file)
    if pairs_file.suffix.lower() == ".bin":
        faces = face_source(evaluation_source(pairs_file)).evaluation_faces(pairs_file, image_size)
    else:
        faces = face_source(evaluation_source(root)).evaluation_faces(
            pathlib.Path(root), image_size, None, pairs_file)
    return evaluation_data(faces, source=str(pairs_file))
