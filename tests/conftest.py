"""Test session set-up: quiet TensorFlow, two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initialises, so
that tests can run `tf.distribute.MirroredStrategy` on one machine.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
