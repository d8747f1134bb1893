"""1:1 template verification (IJB-B / IJB-C style, docs/PAPER.md section 8).

A template is a set of images of one person. Its feature is the mean of its
images' L2-normalised (flip-fused) features, normalised again; pairs of
templates are then scored by cosine similarity like image pairs. IJB's
official lists first average the frames of one video (media pooling); that
step is left out here, every image counts once.
"""

import numpy as np

from catface_keras.evaluation.roc import FAR_DECADES
from catface_keras.evaluation.verification import verification_summary
from catface_keras.unit_vectors import l2_normalize


def template_features(embeddings, template_ids):
    """Mean feature per template.

    Args:
        embeddings: `(N, D)` image features (normalised here if not already).
        template_ids: `(N,)` int template of each image.

    Returns:
        `(templates, features)`: `(T,)` sorted distinct template ids and
        `(T, D)` L2-normalised float64 template features in that order.
    """
    embeddings = np.asarray(embeddings, np.float64)
    template_ids = np.asarray(template_ids)
    if embeddings.ndim != 2 or template_ids.shape != (len(embeddings),):
        raise ValueError(
            "`embeddings` must be (N, D) and `template_ids` (N,). "
            f"Received: embeddings.shape={embeddings.shape}, "
            f"template_ids.shape={template_ids.shape}"
        )
    templates, position = np.unique(template_ids, return_inverse=True)
    sums = np.zeros((len(templates), embeddings.shape[1]))
    np.add.at(sums, position, l2_normalize(embeddings))
    return templates, l2_normalize(sums)


def template_pairs(template_identities, max_pairs=2_000_000, seed=0):
    """Pairs of distinct templates: all of them, or a sample when there are too many.

    Args:
        template_identities: `(T,)` identity of each template.
        max_pairs: when `T (T - 1) / 2` exceeds it, every genuine pair is
            kept and impostor pairs are drawn at random (with replacement),
            up to about `max_pairs` pairs in all.
        seed: sampling seed.

    Returns:
        `(first, second, same)`: `(P,)` template indices and bools.
    """
    template_identities = np.asarray(template_identities)
    count = len(template_identities)
    if count * (count - 1) // 2 <= max_pairs:
        first, second = np.triu_indices(count, k=1)
    else:
        first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for identity in np.unique(template_identities):
            members = np.flatnonzero(template_identities == identity)
            rows, columns = np.triu_indices(len(members), k=1)
            first.append(members[rows])
            second.append(members[columns])
        first, second = np.concatenate(first), np.concatenate(second)
        rng = np.random.default_rng(seed)
        pairs = rng.integers(0, count, size=(max(max_pairs - len(first), 0), 2))
        pairs = pairs[template_identities[pairs[:, 0]] != template_identities[pairs[:, 1]]]
        first, second = np.concatenate([first, pairs[:, 0]]), np.concatenate([second, pairs[:, 1]])
    return first, second, template_identities[first] == template_identities[second]


def template_verification(embeddings, template_ids, first, second, same, fars=FAR_DECADES,
                          second_embeddings=None, threshold_search="insightface"):
    """Template features, then `verification_summary` on the template pairs.

    Args:
        embeddings: `(N, D)` image features.
        template_ids: `(N,)` template of each image.
        first, second: `(P,)` template ids of each pair.
        same: `(P,)` bools.
        second_embeddings: optional `(N, D)` features of the same images
            under another condition, for the pairs' second templates (the
            mixed clean-degraded condition); default `embeddings`.
        threshold_search: see `kfold_accuracy`.

    Returns:
        `(summary, scores)`: the `verification_summary` dict plus
        `num_templates`, and the `(P,)` cosine scores.
    """
    templates, features = template_features(embeddings, template_ids)
    second_features = features
    if second_embeddings is not None:
        second_features = template_features(second_embeddings, template_ids)[1]
    first_row = np.searchsorted(templates, first)
    second_row = np.searchsorted(templates, second)
    known = np.isin(first, templates) & np.isin(second, templates)
    if not known.all():
        raise ValueError(
            "Every template of a pair must have images. Received: pairs naming templates "
            f"{sorted(set(np.asarray(first)[~known]) | set(np.asarray(second)[~known]))[:5]} "
            "that no image belongs to"
        )
    summary, scores = verification_summary(features[first_row], second_features[second_row],
                                           same, fars, threshold_search=threshold_search)
    summary["num_templates"] = int(len(templates))
    return summary, scores
