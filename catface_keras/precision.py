"""The Keras dtype policy of a training run, chosen from the hardware (`train.mixed_precision`)."""

import contextlib

import keras
import tensorflow as tf

# CPU flags of native bf16 arithmetic; without them TensorFlow emulates bf16, several
# times slower than float32.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU feature flags the kernel reports (empty where it does not)."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def choose_dtype_policy(name="auto", gpus=None, flags=None):
    """The Keras dtype policy for `train.mixed_precision`.

    `auto`: `mixed_float16` (with loss scaling, which `compile` adds) on a
    GPU; `mixed_bfloat16` on a CPU with native bf16 arithmetic (AVX-512-BF16
    or AMX), where it is faster; `float32` on other CPUs, where emulated bf16
    is several times slower. Any other name is returned as given (None: leave
    the global policy alone).
    """
    if name != "auto":
        return name
    if gpus is None:
        gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "mixed_float16"
    if flags is None:
        flags = cpu_flags()
    return "mixed_bfloat16" if any(flag in flags for flag in NATIVE_BF16_FLAGS) else "float32"


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy for the block (None: unchanged; "auto":
    `choose_dtype_policy`)."""
    previous = keras.config.dtype_policy()
    name = choose_dtype_policy(name)
    if name:
        keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
