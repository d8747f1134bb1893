"""1:N identification: rank-k accuracy (CMC) of probes against a gallery.

TinyFace style (docs/PAPER.md section 8): the gallery holds the probes' mates plus
distractors, faces of people no probe shows; a probe is correct at rank k when
its mate is among the k best-scoring gallery identities. SCFace style: probes
are grouped (by camera distance) and rank-1 is reported per group against a
gallery of mugshots.
"""

import numpy as np

from catface_keras.unit_vectors import l2_normalize

RANKS = (1, 5, 10, 20)

# Gallery label of a distractor: every distractor image counts as its own identity.
DISTRACTOR_LABEL = -1


def match_ranks(probe_features, probe_labels, gallery_features, gallery_labels):
    """The rank of each probe's mate in the gallery.

    Gallery images of one identity count as one candidate scored by its best
    image; each distractor (`DISTRACTOR_LABEL`) is a candidate of its own.
    Rank = 1 + the number of other candidates scoring at least as high as the
    mate (ties go against the probe).

    Args:
        probe_features: `(Q, D)`.
        probe_labels: `(Q,)` int identities, each present in the gallery.
        gallery_features: `(G, D)`.
        gallery_labels: `(G,)` int identities, `DISTRACTOR_LABEL` for distractors.

    Returns:
        `(Q,)` int ranks >= 1.
    """
    probe_labels = np.asarray(probe_labels)
    gallery_labels = np.asarray(gallery_labels)
    if len(probe_labels) != len(probe_features) or len(gallery_labels) != len(gallery_features):
        raise ValueError(
            "Features and labels must have one row per image. Received: "
            f"{len(probe_features)} probe features, {len(probe_labels)} probe labels, "
            f"{len(gallery_features)} gallery features, {len(gallery_labels)} gallery labels"
        )
    missing = np.setdiff1d(probe_labels, gallery_labels)
    if len(missing) or np.any(probe_labels == DISTRACTOR_LABEL):
        raise ValueError(
            "Every probe identity must be in the gallery (closed-set identification). "
            f"Received: probe identities {missing[:5].tolist()} without a gallery image"
        )
    scores = l2_normalize(probe_features) @ l2_normalize(gallery_features).T  # (Q, G)
    is_distractor = gallery_labels == DISTRACTOR_LABEL
    identities = np.unique(gallery_labels[~is_distractor])
    column = np.searchsorted(identities, gallery_labels[~is_distractor])
    # Best score per gallery identity, then the distractors as they are.
    per_identity = np.full((len(scores), len(identities)), -np.inf)
    np.maximum.at(per_identity.T, column, scores[:, ~is_distractor].T)
    candidates = np.concatenate([per_identity, scores[:, is_distractor]], axis=1)
    mate = np.searchsorted(identities, probe_labels)
    mate_scores = per_identity[np.arange(len(scores)), mate]
    # The mate's own column is counted too, which makes the rank 1-based.
    return np.sum(candidates >= mate_scores[:, None], axis=1).astype(np.int64)


def rank_accuracies(ranks, ranks_at=RANKS):
    """`{"rank_1": ..., "rank_5": ...}`: share of probes with rank <= k."""
    ranks = np.asarray(ranks)
    return {f"rank_{k}": float(np.mean(ranks <= k)) for k in ranks_at}


def grouped_rank1(ranks, groups):
    """Rank-1 accuracy per probe group: `{group: accuracy}` in sorted order."""
    ranks, groups = np.asarray(ranks), np.asarray(groups)
    if ranks.shape != groups.shape:
        raise ValueError(
            "`ranks` and `groups` must have one entry per probe. "
            f"Received: ranks.shape={ranks.shape}, groups.shape={groups.shape}"
        )
    return {str(group): float(np.mean(ranks[groups == group] == 1)) for group in np.unique(groups)}
