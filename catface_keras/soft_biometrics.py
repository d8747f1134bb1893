"""The soft-biometric attributes CATFace uses (docs/PAPER.md section 1), in label order, and
the weighting of their rare positive labels.

Kept free of TensorFlow so that configuration and data code can name them
without loading it.
"""

import numpy as np

PAPER_ATTRIBUTES = ("Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes")

# The 40 attributes of CelebA's list_attr_celeba.txt, in the file's column order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# An attribute label that is not known (labels are 1 positive, 0 negative, -1 unknown);
# the SB loss and the attribute accuracy leave it out.
MISSING_LABEL = -1

# `loss.attribute_positive_weights: balanced`: weights computed from the training labels.
BALANCED_POSITIVE_WEIGHTS = "balanced"


def balanced_positive_weights(labels, attribute_names):
    """Per attribute, negatives / positives among the known `labels`.

    With these weights on its positive term, each attribute's binary cross-entropy weighs
    both classes equally: what balanced accuracy scores, and what keeps a rare attribute
    (CelebA's Bald: 2.5 % positive) from being learnt as the constant answer "no". An
    attribute with no positive or no negative label has nothing to balance and keeps 1.

    Args:
        labels: `(N, A)` attribute labels, 1 positive, 0 negative, `MISSING_LABEL` unknown.
        attribute_names: the A names, for the notes.

    Returns:
        `(weights, notes)`: A floats rounded to 3 significant digits, and one note per
        attribute that kept 1.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(attribute_names):
        raise ValueError(
            f"`labels` must be (N, {len(attribute_names)}), one column per attribute. "
            f"Received shape: {labels.shape}"
        )
    weights, notes = [], []
    for name, column in zip(attribute_names, labels.T):
        positives, negatives = int(np.sum(column == 1)), int(np.sum(column == 0))
        if positives and negatives:
            weights.append(float(f"{negatives / positives:.3g}"))
            continue
        weights.append(1.0)
        notes.append(f"{name} has {positives} positive and {negatives} negative training "
                     "labels: nothing to balance, its positives keep weight 1")
    return weights, notes
