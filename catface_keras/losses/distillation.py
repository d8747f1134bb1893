"""Distillation losses: CATFace's self-attention distillation (docs/PAPER.md section 3)
and the comparison methods of section 9 (feature distillation, A-SKD).

The target side (HQ image, or a frozen teacher) is under stop-gradient, so
the losses only move the student (LQ) side.
"""

from keras import ops

from catface_keras.choices import DISTILLATION_KINDS

DISTANCES = ("cosine", "l2")


def distance_of_kind(kind):
    """The distance (`"cosine"` or `"l2"`) a distillation kind uses."""
    if kind not in DISTILLATION_KINDS:
        raise ValueError(
            f"`distillation` must be one of {DISTILLATION_KINDS}. Received: distillation={kind!r}"
        )
    return "l2" if kind.endswith("l2") else "cosine"


def distillation_distance(hq, lq, kind="cosine"):
    """Per-example distance between HQ and LQ tensors, averaged over the batch.

    Args:
        hq, lq: tensors of one shape `(batch, ...)`, flattened per example;
            `hq` is the target (no gradient flows into it).
        kind: `"cosine"` for 1 - cos(hq, lq) (only the direction counts,
            since the feature norm tracks image quality), or `"l2"` for the
            mean squared difference.

    Returns:
        A float32 scalar.
    """
    if kind not in DISTANCES:
        raise ValueError(f"`kind` must be one of {DISTANCES}. Received: kind={kind!r}")
    batch = ops.shape(lq)[0]
    target = ops.reshape(ops.stop_gradient(ops.cast(hq, "float32")), (batch, -1))
    student = ops.reshape(ops.cast(lq, "float32"), (batch, -1))
    if kind == "l2":
        return ops.mean(ops.square(student - target))
    dot = ops.sum(target * student, axis=-1)
    norms = ops.norm(target, axis=-1) * ops.norm(student, axis=-1)
    cosine = dot / ops.maximum(norms, 1e-12)
    return ops.mean(1.0 - cosine)


def attention_distillation_loss(hq_attention, lq_attention, hq_value, lq_value, kind="cosine"):
    """L_KD of one branch: distance of the attention maps plus of the values.

    Args:
        hq_attention, lq_attention: `(batch, N, N)` attention matrices A.
        hq_value, lq_value: `(batch, N, C)` value matrices V.
        kind: `"cosine"` (the paper's) or `"l2"`.

    Returns:
        A float32 scalar: d(A_h, A_l) + d(V_h, V_l).
    """
    return distillation_distance(hq_attention, lq_attention, kind) + distillation_distance(
        hq_value, lq_value, kind
    )


def summed_map_distillation_loss(target_maps, student_maps, kind="cosine"):
    """Sum over maps of their batch-mean distance (A-SKD with cosine).

    A-SKD (Shin et al. 2022): for every CBAM block, the channel map
    `(batch, C)` and the spatial map `(batch, H, W, 1)`, both before their
    sigmoid, of the student (LR image) are pulled to the frozen teacher's
    (HQ image):  sum_maps mean_batch (1 - cos(student, teacher)).
    The loss weight (5 in A-SKD) is applied by the caller.

    Args:
        target_maps, student_maps: equally long sequences of tensors, pairwise
            of one shape; the targets get no gradient.
        kind: `"cosine"` (A-SKD's) or `"l2"`.

    Returns:
        A float32 scalar (0 for no maps).
    """
    if len(target_maps) != len(student_maps):
        raise ValueError(
            "Teacher and student must have the same number of attention maps. "
            f"Received: {len(target_maps)} and {len(student_maps)}"
        )
    total = ops.zeros((), "float32")
    for target, student in zip(target_maps, student_maps):
        total = total + distillation_distance(target, student, kind)
    return total
