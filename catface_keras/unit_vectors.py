"""L2 normalisation, the one rule every embedding comparison uses.

A row is divided by `max(||x||, 1e-12)`: unit rows stay unit rows and a zero
row stays zero (as scikit-learn's `normalize`), never NaN. `l2_normalize` is
the NumPy form (float64, for evaluation and the CLI); `l2_normalize_ops` is
the same rule in `keras.ops` for losses and layers (it keeps the input's
dtype, so callers that need float32 under mixed precision cast first).
"""

import numpy as np

# Below this norm a vector counts as zero.
NORM_FLOOR = 1e-12


def l2_normalize(x, axis=-1):
    """`x / max(||x||, 1e-12)` along `axis` in float64: `(..., D)` -> `(..., D)`."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), NORM_FLOOR)


def l2_normalize_ops(x, axis=-1):
    """`l2_normalize` in `keras.ops` (differentiable, any backend), in `x`'s dtype."""
    # Imported here: this module serves NumPy-only evaluation code that must not load Keras.
    from keras import ops

    return x / ops.maximum(ops.norm(x, axis=axis, keepdims=True), NORM_FLOOR)
