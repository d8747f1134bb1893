import math
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.layers.adaface import AdaFace, adaface_logits

EPS = 1e-3


def reference_adaface(embeddings, kernel, labels, mean, std, m=0.4, h=0.333, s=64.0, t_alpha=0.01):
    """The official AdaFace head, step by step in NumPy (float64).

    Returns the logits and the updated (mean, std), which the same batch uses.
    """
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    normalized = embeddings / norms
    kernel_norm = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    cosine = np.clip(normalized @ kernel_norm, -1 + EPS, 1 - EPS)
    safe_norms = np.clip(norms, 0.001, 100)
    mean = t_alpha * safe_norms.mean() + (1 - t_alpha) * mean
    std = t_alpha * safe_norms.std(ddof=1) + (1 - t_alpha) * std
    margin_scaler = np.clip((safe_norms - mean) / (std + EPS) * h, -1, 1)
    one_hot = np.zeros_like(cosine)
    one_hot[np.arange(len(labels)), labels] = 1.0
    theta = np.arccos(cosine)
    theta_m = np.clip(theta + one_hot * (m * margin_scaler * -1), EPS, math.pi - EPS)
    cosine = np.cos(theta_m) - one_hot * (m + m * margin_scaler)
    return cosine * s, mean, std


def make_layer(num_classes, dim, **kwargs):
    layer = AdaFace(num_classes, **kwargs)
    layer.build((None, dim))
    return layer


@pytest.mark.parametrize(
    "case",
    ["random", "norm_clip_edges", "theta_near_zero", "theta_near_pi", "norms_near_mean"],
)
def test_adaface_matches_numpy_reference(case):
    rng = np.random.default_rng(7)
    num_classes, dim, batch = 6, 8, 5
    layer = make_layer(num_classes, dim)
    kernel = rng.normal(size=(dim, num_classes))
    layer.kernel.assign(kernel.astype("float32"))
    labels = rng.integers(0, num_classes, size=batch)
    mean, std = 20.0, 100.0
    embeddings = rng.normal(size=(batch, dim)) * 10
    if case == "norm_clip_edges":
        # Norms below 0.001 and above 100 are clipped before the statistics.
        scales = np.array([1e-5, 1e-3, 5.0, 100.0, 1e4])
        embeddings = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True) * scales[:, None]
    elif case == "theta_near_zero":
        # Embeddings on their class centre: cosine 1, clamped to 1 - eps.
        embeddings = kernel[:, labels].T * rng.uniform(5, 50, size=(batch, 1))
    elif case == "theta_near_pi":
        embeddings = -kernel[:, labels].T * rng.uniform(5, 50, size=(batch, 1))
    elif case == "norms_near_mean":
        mean, std = 30.0, 0.5
        layer.norm_mean.assign(mean)
        layer.norm_std.assign(std)
        embeddings = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True) * 30.0
    expected, new_mean, new_std = reference_adaface(embeddings, kernel, labels, mean, std)
    logits = layer(embeddings.astype("float32"), labels, training=True)
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(float(layer.norm_mean), new_mean, rtol=1e-6)
    np.testing.assert_allclose(float(layer.norm_std), new_std, rtol=1e-5)


def test_margin_function_against_reference_with_fixed_statistics():
    rng = np.random.default_rng(3)
    cosine = np.clip(rng.uniform(-1, 1, size=(4, 7)), -1 + EPS, 1 - EPS)
    norms = np.array([0.001, 10.0, 20.0, 100.0])
    labels = np.array([0, 3, 6, 2])
    got = adaface_logits(
        cosine.astype("float32"), norms.astype("float32"), labels, 20.0, 100.0, eps=EPS
    )
    scaler = np.clip(0.333 * (norms - 20.0) / (100.0 + EPS), -1, 1)
    expected = cosine * 64.0
    for row, label in enumerate(labels):
        theta = np.clip(np.arccos(cosine[row, label]) - 0.4 * scaler[row], EPS, math.pi - EPS)
        expected[row, label] = 64.0 * (np.cos(theta) - 0.4 - 0.4 * scaler[row])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-3)


def test_h_zero_is_cosface():
    rng = np.random.default_rng(0)
    cosine = np.clip(rng.uniform(-1, 1, size=(3, 5)), -1 + EPS, 1 - EPS).astype("float32")
    labels = np.array([1, 2, 4])
    got = np.asarray(adaface_logits(cosine, np.ones(3, "float32") * 50, labels, 20.0, 1.0, h=0.0))
    expected = cosine.copy()
    expected[np.arange(3), labels] -= 0.4
    np.testing.assert_allclose(got, expected * 64.0, rtol=1e-5, atol=1e-3)


def test_statistics_not_updated_at_inference_and_used_as_is():
    layer = make_layer(4, 3)
    embeddings = np.ones((2, 3), "float32")
    layer(embeddings, np.array([0, 1]), training=False)
    assert float(layer.norm_mean) == 20.0 and float(layer.norm_std) == 100.0
    layer(embeddings * 5, np.array([0, 1]), training=True)
    assert float(layer.norm_mean) != 20.0


def test_one_element_batch_keeps_statistics_finite():
    layer = make_layer(4, 3)
    layer(np.ones((1, 3), "float32"), np.array([2]), training=True)
    assert np.isfinite(float(layer.norm_std))
    np.testing.assert_allclose(float(layer.norm_std), 0.99 * 100.0, rtol=1e-6)


def test_statistics_survive_keras_round_trip(tmp_path):
    layer = make_layer(5, 4)
    rng = np.random.default_rng(1)
    for _ in range(3):
        layer(rng.normal(size=(6, 4)).astype("float32") * 7, rng.integers(0, 5, 6), training=True)
    inputs = keras.Input((4,))
    labels = keras.Input((), dtype="int32")
    model = keras.Model([inputs, labels], layer(inputs, labels))
    path = pathlib.Path(tmp_path, "adaface.keras")
    model.save(path)
    restored = keras.models.load_model(path).get_layer(layer.name)
    assert float(restored.norm_mean) == pytest.approx(float(layer.norm_mean))
    assert float(restored.norm_std) == pytest.approx(float(layer.norm_std))
    np.testing.assert_array_equal(np.asarray(restored.kernel), np.asarray(layer.kernel))


def test_statistics_identical_on_every_replica(two_cpu_strategy):
    """Each replica sees different norms; all-reduced moments give one value."""
    strategy = two_cpu_strategy
    with strategy.scope():
        layer = make_layer(4, 2)
    norms = np.array([1.0, 2.0, 30.0, 40.0], "float32")
    embeddings = np.stack([norms, np.zeros(4, "float32")], axis=1)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((embeddings, np.array([0, 1, 2, 3]))).unbatch().batch(4)
    )

    @tf.function
    def step(batch):
        return strategy.run(lambda x, y: layer(x, y, training=True), args=batch)

    step(next(iter(dataset)))
    expected_mean = 0.01 * norms.mean() + 0.99 * 20.0
    expected_std = 0.01 * norms.std(ddof=1) + 0.99 * 100.0
    for value in layer.norm_mean.value.values:
        np.testing.assert_allclose(float(value), expected_mean, rtol=1e-6)
    for value in layer.norm_std.value.values:
        np.testing.assert_allclose(float(value), expected_std, rtol=1e-6)


def test_config_round_trip_and_argument_errors():
    layer = AdaFace(10, margin=0.5, h=0.2, scale=32.0, t_alpha=0.05, eps=1e-4)
    config = layer.get_config()
    assert AdaFace.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="num_classes"):
        AdaFace(1)
    with pytest.raises(ValueError, match="t_alpha"):
        AdaFace(10, t_alpha=0.0)
