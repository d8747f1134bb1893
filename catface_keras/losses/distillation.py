"""Self-attention distillation losses (PAPER.md section 3).

The HQ side is the target: it is under stop-gradient, so the loss only
moves the LQ side (self-distillation, no separate teacher).
"""

from keras import ops

from catface_keras.choices import DISTILLATION_KINDS


def distillation_distance(hq, lq, kind="cosine"):
    """Per-example distance between HQ and LQ tensors, averaged over the batch.

    Args:
        hq, lq: tensors of one shape `(batch, ...)`, flattened per example.
        kind: `"cosine"` for 1 - cos(hq, lq) (only the direction counts,
            since the feature norm tracks image quality), or `"l2"` for the
            mean squared difference.

    Returns:
        A float32 scalar.
    """
    if kind not in DISTILLATION_KINDS:
        raise ValueError(
            f"`kind` must be one of {DISTILLATION_KINDS}. Received: kind={kind!r}"
        )
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
