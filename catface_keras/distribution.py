"""Helpers for code that runs inside a `tf.distribute` replica.

Keras sums gradients over replicas, so a loss computed by hand inside
`train_step` must be divided by the replica count (Keras's own `compute_loss`
does the same). Statistics that must be identical on every replica are
summed over replicas before use.
"""

import tensorflow as tf


def num_replicas():
    """Replicas in sync under the current strategy (1 without a strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def scale_loss_for_replicas(loss):
    """Divides a per-replica mean loss so that summed gradients are a mean."""
    replicas = num_replicas()
    return loss if replicas == 1 else loss / tf.cast(replicas, loss.dtype)


def cross_replica_sum(value):
    """Sum of `value` over all replicas; `value` itself without a strategy.

    Must be called in a replica context (inside `train_step`), where every
    replica calls it in the same order.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
