"""Soft-biometric attribute loss: one weighted, masked BCE per attribute."""

from keras import ops

from catface_keras.distribution import cross_replica_sum, num_replicas
from catface_keras.soft_biometrics import MISSING_LABEL  # noqa: F401 (re-exported)


def masked_attribute_bce(labels, logits, attribute_weights=None, positive_weights=None):
    """L_SB = sum_j w_j * BCE_j, each BCE a mean over the labelled examples.

    A label of 1 is positive, 0 negative and -1 (`MISSING_LABEL`) unknown:
    unknown labels contribute nothing, neither to the loss nor to the count
    it is averaged over. Under a distribution strategy the count is summed
    over replicas, so that after the usual 1 / replicas loss scaling the
    gradient equals the single-device one.

    Args:
        labels: `(batch, num_attributes)` ints in {-1, 0, 1}.
        logits: `(batch, num_attributes)`.
        attribute_weights: w_j, `num_attributes` floats (default all 1).
        positive_weights: optional per-attribute weight of positive examples,
            for rare attributes (CelebA's Bald is 2% positive).

    Returns:
        A float32 scalar.
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "float32")
    valid = ops.cast(ops.not_equal(labels, float(MISSING_LABEL)), "float32")
    targets = labels * valid
    # Stable log(1 + exp(-|x|)) form of BCE with logits.
    bce = ops.maximum(logits, 0.0) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
    if positive_weights is not None:
        positive_weights = ops.convert_to_tensor(positive_weights, "float32")
        bce = bce * (1.0 + (positive_weights - 1.0) * targets)
    count = cross_replica_sum(ops.sum(valid, axis=0)) / float(num_replicas())
    per_attribute = ops.sum(bce * valid, axis=0) / ops.maximum(count, 1.0)
    if attribute_weights is not None:
        per_attribute = per_attribute * ops.convert_to_tensor(attribute_weights, "float32")
    return ops.sum(per_attribute)
