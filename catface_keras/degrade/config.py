"""`DegradationConfig`, defined TensorFlow-free in `catface_keras.degradation_config`."""

from catface_keras.degradation_config import DegradationConfig, check_values

__all__ = ["DegradationConfig", "check_values"]
