"""Index-diversion loss (Chai et al., CVPR 2023), differentiable, in Keras ops.

Uses the recognizability index of `catface_keras.evaluation.recognizability`
(that module's docstring defines it):

    RI = (d_ui / 2) * (2 + d_other - d_own) / 4,    d(a, b) = 1 - cos(a, b)

and pushes embeddings away from the unrecognisable-identity centre c, the
harder the less recognisable they are:

    L_ID = mean_i  (1 - sg(RI_i)) * (1 + cos(z_i, c)) / 2

sg is stop-gradient: the RI only weighs the examples (the paper's "low-RI
embeddings"; a soft weight instead of a threshold is this package's choice),
the gradient moves z_i along -c. Zero when every embedding points away from c.
"""

from keras import ops

from catface_keras.unit_vectors import l2_normalize_ops


def _normalize(x):
    return l2_normalize_ops(ops.cast(x, "float32"))


def recognizability_index_ops(embeddings, center, prototypes, labels):
    """`(batch,)` RI with own prototype `prototypes[labels]`.

    Args:
        embeddings: `(batch, D)`; center: `(D,)`; prototypes: `(K, D)`, K >= 2;
        labels: `(batch,)` int class indices.
    """
    z = _normalize(embeddings)
    d_ui = 1.0 - ops.sum(z * _normalize(center)[None, :], axis=-1)
    distances = 1.0 - ops.matmul(z, ops.transpose(_normalize(prototypes)))
    own = ops.one_hot(ops.cast(labels, "int32"), ops.shape(prototypes)[0])
    d_own = ops.sum(distances * own, axis=-1)
    d_other = ops.min(distances + 4.0 * own, axis=-1)  # distances <= 2, so own never wins
    return (d_ui / 2.0) * (2.0 + d_other - d_own) / 4.0


def index_diversion_loss(embeddings, center, prototypes, labels):
    """L_ID of the module docstring: a float32 scalar."""
    ri = ops.stop_gradient(recognizability_index_ops(embeddings, center, prototypes, labels))
    closeness = (1.0 + ops.sum(_normalize(embeddings) * _normalize(center)[None, :], -1)) / 2.0
    return ops.mean((1.0 - ri) * closeness)
