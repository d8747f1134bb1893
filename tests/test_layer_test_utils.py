"""The layer harness fails where a layer breaks its contract (it is not a test that cannot fail)."""

import keras
import numpy as np
import pytest
from layer_test_utils import random_inputs, run_layer_test


class ForgetsAnArgument(keras.layers.Layer):
    def __init__(self, units=2, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale = units, scale
        self.dense = keras.layers.Dense(units, dtype=self.dtype_policy)

    def call(self, inputs):
        return self.dense(inputs) * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}  # no `scale`


class ComputesInFloat32(ForgetsAnArgument):
    def call(self, inputs):
        return keras.ops.cast(self.dense(inputs), "float32")

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def test_a_missing_config_argument_fails():
    with pytest.raises(AssertionError, match="lacks 'scale'"):
        run_layer_test(ForgetsAnArgument, {}, random_inputs((2, 3)), (2, 2))


def test_a_wrong_weight_count_fails():
    with pytest.raises(AssertionError):
        run_layer_test(ComputesInFloat32, {}, random_inputs((2, 3)), (2, 2),
                       expected_num_trainable_weights=3)


def test_an_output_that_ignores_the_dtype_policy_fails():
    with pytest.raises(AssertionError, match="mixed_float16: output dtype"):
        run_layer_test(ComputesInFloat32, {}, random_inputs((2, 3)), (2, 2), 2, 0,
                       run_saving_check=False)
    # Declared as float32 on purpose, it passes (unregistered here, so not saved).
    run_layer_test(ComputesInFloat32, {}, random_inputs((2, 3)), (2, 2), 2, 0,
                   float32_outputs=True, run_saving_check=False)


def test_a_wrong_output_shape_fails():
    with pytest.raises(AssertionError, match="symbolic shapes"):
        run_layer_test(ComputesInFloat32, {}, np.zeros((2, 3), "float32"), (2, 3))
