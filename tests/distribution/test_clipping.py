import keras
import numpy as np
import tensorflow as tf

from catface_keras.distribution import CrossReplicaClipSGD


def train_one_step(strategy, optimizer_class, initial, x, y):
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.set_weights(initial)
        model.compile(
            optimizer=optimizer_class(0.5, momentum=0.9, weight_decay=1e-2, global_clipnorm=0.1),
            loss="mse",
        )
    model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    return model.get_weights()


def test_clipping_uses_the_gradient_summed_over_replicas(two_cpu_strategy):
    """Tolerance 1e-6: the same float32 sums in another order."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = (rng.normal(size=(8, 3)) * 10).astype("float32")  # gradient norm far above 0.1
    initial = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).get_weights()
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    expected = train_one_step(one_device, keras.optimizers.SGD, initial, x, y)
    got = train_one_step(two_cpu_strategy, CrossReplicaClipSGD, initial, x, y)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Keras's own SGD clips each replica's half before summing: another step.
    keras_sgd = train_one_step(two_cpu_strategy, keras.optimizers.SGD, initial, x, y)
    assert not np.allclose(keras_sgd[0], expected[0], atol=1e-4)
    # One device: exactly Keras's SGD.
    alone = train_one_step(one_device, CrossReplicaClipSGD, initial, x, y)
    for a, b in zip(alone, expected):
        np.testing.assert_array_equal(a, b)
