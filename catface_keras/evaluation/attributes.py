"""Per-attribute accuracy of soft-biometric predictions."""

import numpy as np

from catface_keras.soft_biometrics import MISSING_LABEL


def attribute_accuracy(labels, logits, attribute_names):
    """Accuracy of `logit > 0` per attribute, over the labelled images only.

    Args:
        labels: `(N, A)` ints in {-1, 0, 1}; -1 is unknown and skipped.
        logits: `(N, A)`.
        attribute_names: `A` names.

    Returns:
        dict name -> accuracy (NaN for an attribute with no label).
    """
    labels = np.asarray(labels)
    predictions = np.asarray(logits) > 0
    if labels.shape != predictions.shape or labels.shape[1] != len(attribute_names):
        raise ValueError(
            "`labels`, `logits` and `attribute_names` disagree on the attributes. "
            f"Received: labels.shape={labels.shape}, logits.shape={predictions.shape}, "
            f"{len(attribute_names)} names"
        )
    accuracy = {}
    for column, name in enumerate(attribute_names):
        known = labels[:, column] != MISSING_LABEL
        correct = predictions[known, column] == (labels[known, column] == 1)
        accuracy[name] = float(correct.mean()) if known.any() else float("nan")
    return accuracy
