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


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One MirroredStrategy over the two logical CPUs, shared by every test.

    Strategies created one after another in a process number their collective
    ops from the same start, and the second then trips over the first's
    ("Shape mismatch in the collective instance"); sharing one avoids it.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
