import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.layers.cross_attention import CrossAttentionFusion, DualCrossAttention


def _maps(shape=(2, 2, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype("float32") for _ in range(2)]


def _numpy_cross_attention(attention, norm, queries_from, values_from):
    """LayerNorm(V_in + MHA(Q from `queries_from`, K and V from `values_from`))."""
    batch, height, width, channels = values_from.shape
    queries = queries_from.reshape(batch, height * width, channels)
    values = values_from.reshape(batch, height * width, channels)

    def project(dense, tokens):
        return np.einsum("bnc,chd->bnhd", tokens, dense.kernel.numpy()) + dense.bias.numpy()

    q = project(attention.query_dense, queries)
    k = project(attention.key_dense, values)
    v = project(attention.value_dense, values)
    scores = np.einsum("bnhd,bmhd->bhnm", q, k) / np.sqrt(q.shape[-1])
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bhnm,bmhd->bnhd", weights, v)
    output = attention.output_dense
    attended = np.einsum("bnhd,hdc->bnc", heads, output.kernel.numpy()) + output.bias.numpy()
    residual = values + attended
    mean = residual.mean(-1, keepdims=True)
    variance = residual.var(-1, keepdims=True)
    normalised = (residual - mean) / np.sqrt(variance + norm.epsilon)
    normalised = normalised * norm.gamma.numpy() + norm.beta.numpy()
    return normalised.reshape(batch, height, width, channels)


def test_dual_cross_attention_matches_numpy_with_exchanged_queries():
    fr, sb = _maps()
    layer = DualCrossAttention(num_heads=2, key_dim=3)
    fr_out, sb_out = layer([fr, sb])
    # Non-trivial LayerNorm parameters so that they are checked too.
    for norm in (layer.fr_norm, layer.sb_norm):
        norm.gamma.assign(np.linspace(0.5, 1.5, 4))
        norm.beta.assign(np.linspace(-0.2, 0.2, 4))
    fr_out, sb_out = layer([fr, sb])
    expected_fr = _numpy_cross_attention(layer.fr_attention, layer.fr_norm, sb, fr)
    expected_sb = _numpy_cross_attention(layer.sb_attention, layer.sb_norm, fr, sb)
    np.testing.assert_allclose(fr_out, expected_fr, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sb_out, expected_sb, rtol=1e-4, atol=1e-5)
    # The queries really are exchanged: FR's own queries give another result.
    own_queries = _numpy_cross_attention(layer.fr_attention, layer.fr_norm, fr, fr)
    assert np.abs(own_queries - expected_fr).max() > 1e-3


def test_swapping_inputs_and_direction_weights_swaps_outputs():
    fr, sb = _maps(seed=1)
    first = DualCrossAttention(num_heads=2)
    fr_out, sb_out = first([fr, sb])
    second = DualCrossAttention(num_heads=2)
    second([fr, sb])
    for target, source in ((second.fr_attention, first.sb_attention),
                           (second.sb_attention, first.fr_attention),
                           (second.fr_norm, first.sb_norm),
                           (second.sb_norm, first.fr_norm)):
        target.set_weights(source.get_weights())
    swapped_fr, swapped_sb = second([sb, fr])
    np.testing.assert_allclose(swapped_fr, sb_out, atol=1e-6)
    np.testing.assert_allclose(swapped_sb, fr_out, atol=1e-6)


@pytest.mark.parametrize("output_index", [0, 1])
def test_each_output_has_gradient_to_both_inputs(output_index):
    fr, sb = (tf.Variable(x) for x in _maps(seed=2))
    layer = DualCrossAttention(num_heads=2)
    # A random projection: a plain sum after LayerNorm has zero gradient.
    weights = np.random.default_rng(3).normal(size=fr.shape).astype("float32")
    with tf.GradientTape() as tape:
        output = layer([fr, sb])[output_index]
        score = tf.reduce_sum(output * weights)
    for gradient in tape.gradient(score, [fr, sb]):
        assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 1e-6


def test_cross_attention_fusion_is_the_fr_direction():
    fr, sb = _maps(seed=4)
    layer = CrossAttentionFusion(num_heads=2, key_dim=3)
    output = layer([fr, sb])
    expected = _numpy_cross_attention(layer.attention, layer.norm, sb, fr)
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-5)


def test_mismatched_maps_are_refused():
    fr = keras.Input((3, 3, 8))
    sb = keras.Input((3, 3, 4))
    with pytest.raises(ValueError, match="two \\(batch, H, W, C\\) maps of one known shape"):
        DualCrossAttention()([fr, sb])
    with pytest.raises(ValueError, match="num_heads"):
        DualCrossAttention(num_heads=0)
