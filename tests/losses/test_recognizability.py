import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import tiny_model

from catface_keras.evaluation.recognizability import recognizability_index
from catface_keras.losses.recognizability import index_diversion_loss, recognizability_index_ops


def test_ops_ri_matches_the_numpy_definition():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 5)).astype("float32")
    center = rng.normal(size=5).astype("float32")
    prototypes = rng.normal(size=(4, 5)).astype("float32")
    labels = np.array([0, 1, 2, 3, 0, 1])
    np.testing.assert_allclose(
        recognizability_index_ops(z, center, prototypes, labels),
        recognizability_index(z, center, prototypes, labels), rtol=1e-5, atol=1e-6,
    )


def test_index_diversion_pushes_away_from_the_centre_only():
    center = np.array([1.0, 0.0, 0.0], "float32")
    prototypes = np.eye(3, dtype="float32")
    away = np.array([[-1.0, 0.0, 0.0]], "float32")
    assert float(index_diversion_loss(away, center, prototypes, [1])) == pytest.approx(0.0)
    z = tf.Variable([[0.6, 0.8, 0.0]])
    with tf.GradientTape() as tape:
        loss = index_diversion_loss(z, center, prototypes, [1])
    gradient = tape.gradient(loss, z).numpy()
    assert float(loss) > 0 and gradient[0, 0] > 0  # descent lowers cos(z, c)


def test_model_trains_with_perceptibility_attention_and_index_diversion(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model(perceptibility_attention=True, index_diversion_weight=1.0)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    rng = np.random.default_rng(0)
    hq = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    logs = model.train_on_batch({"hq": hq, "lq": hq[::-1]}, {"identity": np.arange(4)},
                                return_dict=True)
    assert logs["index_diversion"] > 0
    assert np.linalg.norm(model.unrecognizable_center.numpy()) > 0
    assert model.network.feature_network.output["fr_perceptibility"].shape[1:] == (2, 2, 1)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.unrecognizable_center.numpy(),
                               model.unrecognizable_center.numpy())
    np.testing.assert_allclose(restored.predict(hq, verbose=0)["embedding"],
                               model.predict(hq, verbose=0)["embedding"], atol=1e-5)
