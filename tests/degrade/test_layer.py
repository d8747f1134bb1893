"""Tests for the `Degradation` Keras layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from degrade.face_drawing import drawn_faces
from layer_test_utils import run_layer_test

from catface_keras.degrade import Degradation
from catface_keras.degrade import DegradationConfig

EAGER = DegradationConfig(jit_compile=False)


def test_layer_basics():
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    run_layer_test(
        Degradation,
        {"degradation_config": EAGER.to_dict(), "seed": 3, "apply_at_inference": False},
        images,
        expected_output_shape=(2, 32, 32, 3),
        expected_num_trainable_weights=0,
    )


def test_identity_at_inference_and_degrades_in_training():
    images = tf.constant(drawn_faces(4, 32), tf.float32)
    layer = Degradation(EAGER, seed=1)
    np.testing.assert_array_equal(layer(images), images)
    np.testing.assert_array_equal(layer(images, training=False), images)
    trained = layer(images, training=True).numpy()
    assert trained.shape == images.shape and np.abs(trained - images).mean() > 1.0
    always = Degradation(EAGER, seed=1, apply_at_inference=True)
    assert np.abs(always(images).numpy() - images).mean() > 1.0


def test_seeded_layers_replay_and_successive_calls_differ():
    images = tf.constant(drawn_faces(4, 32), tf.float32)
    first, second = Degradation(EAGER, seed=5), Degradation(EAGER, seed=5)
    a = first(images, training=True).numpy()
    np.testing.assert_array_equal(a, second(images, training=True).numpy())
    assert not np.array_equal(a, first(images, training=True).numpy())


def test_uint8_and_mixed_precision_inputs_keep_their_dtype():
    images = drawn_faces(2, 32)
    assert Degradation(EAGER, seed=0)(images, training=True).dtype == tf.uint8
    layer = Degradation(EAGER, seed=0, dtype="mixed_float16")
    assert layer(images.astype(np.float32), training=True).dtype == tf.float16


def test_layer_in_a_trained_model():
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            Degradation(EAGER, seed=2),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(4, 3, strides=2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(drawn_faces(8, 32), np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"degradation_config": "strong"}, "Received: degradation_config='strong'"),
        ({"degradation_config": {"turbulence_fraction": 2.0}}, "Received: turbulence_fraction=2.0"),
        ({"seed": 1.5}, "Received: seed=1.5"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Degradation(**kwargs)


def test_replicas_degrade_independently(two_cpu_strategy):
    strategy = two_cpu_strategy
    with strategy.scope():
        layer = Degradation(EAGER, seed=4)
    images = np.repeat(drawn_faces(1, 32), 4, axis=0).astype(np.float32)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(images).rebatch(4)
    )

    @tf.function
    def step(batch):
        return strategy.run(lambda x: layer(x, training=True), args=(batch,))

    outputs = strategy.experimental_local_results(step(next(iter(dataset))))
    assert len(outputs) == 2
    first, second = (output.numpy() for output in outputs)
    assert first.shape == second.shape == (2, 32, 32, 3)
    assert np.abs(first - second).mean() > 0.5
