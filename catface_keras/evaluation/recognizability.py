"""Recognizability index (Chai et al., CVPR 2023; docs/PAPER.md section 9), in NumPy.

Embeddings of unrecognisable faces gather around one point of the
hypersphere, whatever made them unrecognisable; the recognizability index
(RI) of a face embedding combines how far it is from that point with how
clearly it sits with its own identity rather than the nearest other one.

Definitions used here (all vectors L2-normalised first; d(a, b) = 1 - cos(a, b)
is the cosine distance, in [0, 2]):

    c        unrecognisable-identity centre: the mean of the normalised
             embeddings of heavily degraded faces (`unrecognizable_center`)
    d_ui     = d(z, c)                     far from c: recognisable
    d_own    = d(z, p_own)                 p_own: prototype of z's identity
    d_other  = min_{k != own} d(z, p_k)    the nearest other prototype

    RI = (d_ui / 2) * (2 + d_other - d_own) / 4        in [0, 1]

RI grows with d_ui and d_other and falls with d_own (strictly wherever the
other factor is positive). The paper states the two criteria (proximity to
the centre; closeness to the positive and negative prototypes) and combines
them with learned terms; the product of the two normalised criteria above is
this package's choice, a fixed and label-free-capable score. Without labels
(quality estimation of a probe), p_own is the nearest prototype and p_other
the second nearest. Prototypes are the normalised mean embedding per identity
(`class_prototypes`) or a classifier's class centres (AdaFace weights).
"""

import numpy as np

from catface_keras.evaluation.erc import erc_comparison, pair_quality
from catface_keras.unit_vectors import l2_normalize


def unrecognizable_center(degraded_embeddings):
    """`(N, D)` embeddings of heavily degraded faces -> `(D,)` mean of their normalised copies."""
    embeddings = np.asarray(degraded_embeddings)
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(
            "`degraded_embeddings` must be a non-empty (N, D) array. "
            f"Received: shape={embeddings.shape}"
        )
    return l2_normalize(embeddings).mean(axis=0)


def class_prototypes(embeddings, labels):
    """`(classes, prototypes)`: the sorted labels and their normalised mean embeddings `(K, D)`."""
    embeddings, labels = l2_normalize(embeddings), np.asarray(labels)
    classes = np.unique(labels)
    prototypes = np.stack([embeddings[labels == k].mean(axis=0) for k in classes])
    return classes, l2_normalize(prototypes)


def recognizability_distances(embeddings, center, prototypes, labels=None, classes=None):
    """`(d_ui, d_own, d_other)`, each `(N,)`, as defined in the module docstring.

    Args:
        embeddings: `(N, D)`.
        center: `(D,)` from `unrecognizable_center`.
        prototypes: `(K, D)`, K >= 2.
        labels: optional `(N,)` identities; their prototype is `prototypes[i]`
            where `classes[i] == label` (`classes` defaults to `arange(K)`).
            Without labels, own = nearest prototype, other = second nearest.
    """
    z = l2_normalize(embeddings)
    prototypes = l2_normalize(prototypes)
    if prototypes.ndim != 2 or len(prototypes) < 2:
        raise ValueError(
            f"`prototypes` must be (K, D) with K >= 2. Received: shape={prototypes.shape}"
        )
    d_ui = 1.0 - z @ l2_normalize(center)
    distances = 1.0 - z @ prototypes.T  # (N, K)
    if labels is None:
        nearest = np.sort(distances, axis=1)
        return d_ui, nearest[:, 0], nearest[:, 1]
    classes = np.arange(len(prototypes)) if classes is None else np.asarray(classes)
    index = np.searchsorted(classes, labels)
    if np.any(index >= len(classes)) or np.any(classes[np.minimum(index, len(classes) - 1)] != labels):
        raise ValueError("Every label needs a prototype. Received labels not in `classes`.")
    rows = np.arange(len(z))
    d_own = distances[rows, index]
    others = distances.copy()
    others[rows, index] = np.inf
    return d_ui, d_own, others.min(axis=1)


def recognizability_from_distances(d_ui, d_own, d_other):
    """RI = (d_ui / 2) * (2 + d_other - d_own) / 4, elementwise."""
    return (np.asarray(d_ui) / 2.0) * (2.0 + np.asarray(d_other) - np.asarray(d_own)) / 4.0


def recognizability_index(embeddings, center, prototypes, labels=None, classes=None):
    """`(N,)` RI of each embedding (see the module docstring); higher is more recognisable."""
    return recognizability_from_distances(
        *recognizability_distances(embeddings, center, prototypes, labels, classes)
    )


def quality_erc(embeddings, first, second, same, center, prototypes, fmr=1e-2, seed=0):
    """ERCs of RI, the AdaFace feature norm and a random order on verification pairs.

    Args:
        embeddings: `(N, D)` unnormalised embeddings (their norm is AdaFace's
            quality proxy).
        first, second: `(P,)` image indices of each pair; same: `(P,)` bools.
        center, prototypes: as in `recognizability_index` (no labels: the
            probe's identity is unknown).

    Returns:
        dict name -> `erc.error_versus_reject` result for `"recognizability"`,
        `"feature_norm"` and `"random"`.
    """

    z = l2_normalize(embeddings)
    scores = np.sum(z[first] * z[second], axis=-1)
    ri = recognizability_index(embeddings, center, prototypes)
    norm = np.linalg.norm(np.asarray(embeddings, "float64"), axis=-1)
    qualities = {
        "recognizability": pair_quality(ri[first], ri[second]),
        "feature_norm": pair_quality(norm[first], norm[second]),
    }
    return erc_comparison(scores, same, qualities, fmr, seed=seed)


# Heavily degraded copies that define the unrecognisable-identity centre: A-SKD's
# shrink to 1/28 of the side (4 px of 112) and back, then a blur.
UNRECOGNIZABLE_FRACTION = 1 / 28
UNRECOGNIZABLE_BLUR = 2.0


def model_quality_erc(model, class_centres, clean_images, probe_images, first, second, same,
                      batch_size=64, fmr=1e-2, seed=0, max_center_images=512):
    """ERCs of RI, the feature norm and a random order for `model` on verification pairs.

    The centre comes from heavily degraded copies of up to `max_center_images` of
    `clean_images`; the prototypes are the AdaFace class centres of the model's training
    (the probes' identities are unknown, so RI uses the nearest and second-nearest of them).

    Args:
        model: a CATFace model (stage 1 or stage 2).
        class_centres: `(C, D)` class centres of its margin head (a training file's, see
            `models.loading.load_model_and_class_centres`), or None.
        clean_images: `(N, S, S, 3)` at the model's input size.
        probe_images: `(N, S, S, 3)`: the images whose pairs are scored (e.g. degraded).
        first, second, same: the pairs (`(P,)` indices and bools).

    Returns:
        As `quality_erc`, or None without class centres.
    """
    from catface_keras.degrade.askd import askd_low_resolution
    from catface_keras.evaluation.features import extract_features

    if class_centres is None:
        return None
    subset = np.asarray(clean_images[:max_center_images], "float32")
    unrecognizable = np.asarray(askd_low_resolution(
        subset, seed, fractions=(UNRECOGNIZABLE_FRACTION,), blur_sigma=UNRECOGNIZABLE_BLUR
    ))
    center = unrecognizable_center(
        extract_features(model, unrecognizable, batch_size, flip=False).embeddings
    )
    embeddings = extract_features(
        model, probe_images, batch_size, flip=False, normalize=False
    ).embeddings
    return quality_erc(
        embeddings, first, second, same, center, np.asarray(class_centres), fmr, seed
    )
