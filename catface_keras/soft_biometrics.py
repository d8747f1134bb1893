"""The soft-biometric attributes CATFace uses (PAPER.md section 1), in label order.

Kept free of TensorFlow so that configuration and data code can name them
without loading it.
"""

PAPER_ATTRIBUTES = ("Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes")
