import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.layers.catf import CATF


def _layer_norm(x, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps)


def test_identity_init_starts_as_layer_normed_concatenation_and_still_learns():
    rng = np.random.default_rng(0)
    fr, sb = (rng.normal(size=(3, 2, 2, 8)).astype("float32") for _ in range(2))
    layer = CATF(num_heads=2, groups=2, identity_init=True)
    out = np.asarray(layer([fr, sb], training=False))
    expected = np.concatenate([_layer_norm(fr), _layer_norm(sb)], -1)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    plain = np.asarray(CATF(num_heads=2, groups=2)([fr, sb], training=False))
    assert np.abs(plain - expected).max() > 0.1  # the default starts elsewhere
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(layer([fr, sb], training=True) ** 3)
    grads = tape.gradient(loss, layer.trainable_variables)
    zeroed = [v.path for v, g in zip(layer.trainable_variables, grads)
              if "output" in v.path or "project_bn/gamma" in v.path or "value_kernel" in v.path]
    assert zeroed and all(
        np.abs(g.numpy()).max() > 0
        for v, g in zip(layer.trainable_variables, grads) if v.path in zeroed
    )
    with pytest.raises(ValueError, match="needs residual=True"):
        CATF(identity_init=True, residual=False)
