"""`CrossReplicaClipSGD` updates through TensorFlow's fused kernels with Keras' SGD arithmetic."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.distribution import CrossReplicaClipSGD

SETTINGS = {
    "momentum, weight decay, clipping": {"momentum": 0.9, "weight_decay": 5e-3,
                                         "global_clipnorm": 0.5},
    "plain SGD with weight decay": {"momentum": 0.0, "weight_decay": 5e-3},
    "nesterov (Keras' update)": {"momentum": 0.9, "nesterov": True, "global_clipnorm": 0.5},
}


def train(optimizer, steps=3):
    """A dense layer and an embedding (sparse gradients) trained for `steps` steps."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((2,), dtype="int32")
    features = keras.Input((4,))
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 3)(tokens))
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([embedded, features]))
    model = keras.Model([tokens, features], outputs)
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 10, (8, 2)).astype("int32"), rng.normal(size=(8, 4)).astype("float32")]
    y = (rng.normal(size=(8, 2)) * 10).astype("float32")  # gradient norm far above 0.5
    model.fit(x, y, batch_size=8, epochs=steps, verbose=0, shuffle=False)
    return model.get_weights(), [np.asarray(v) for v in optimizer.variables]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_updates_equal_keras_sgd(name):
    """Three steps, every weight and momentum; 1e-6: the decay multiplies by lr * wd in one go."""
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.05, 0.01])
    ours = train(CrossReplicaClipSGD(schedule, **SETTINGS[name]))
    keras_sgd = train(keras.optimizers.SGD(schedule, **SETTINGS[name]))
    for got, expected in zip(ours[0] + ours[1], keras_sgd[0] + keras_sgd[1]):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(ours[0][0], train(keras.optimizers.SGD(0.0))[0][0])  # it moved


def test_dense_updates_run_as_fused_kernels():
    variables = [keras.Variable(np.ones((3, 2), "float32")), keras.Variable(np.ones(2, "float32"))]
    optimizer = CrossReplicaClipSGD(0.1, momentum=0.9, weight_decay=1e-3, global_clipnorm=1.0)
    optimizer.build(variables)
    gradients = [tf.ones((3, 2)), tf.ones(2)]

    @tf.function
    def apply():
        optimizer.apply(gradients, variables)

    op_types = {op.type for op in apply.get_concrete_function().graph.get_operations()}
    assert {"ResourceApplyKerasMomentum", "ResourceApplyGradientDescent", "L2Loss"} <= op_types
    apply()
    # By hand: norm sqrt(8), clipped to 1; decay then momentum from zero.
    clipped = 1.0 / np.sqrt(8.0)
    expected = 1.0 - 0.1 * 1e-3 * 1.0 - 0.1 * clipped
    np.testing.assert_allclose(np.asarray(variables[0]), np.full((3, 2), expected), rtol=1e-6)
