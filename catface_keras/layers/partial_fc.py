"""Partial FC: a class-sharded, negative-sampled AdaFace head for millions of identities.

The class centres `(D, C)` are split column-wise into `num_shards` shards
(one per replica or machine); a shard holds only its own centres (and their
optimizer state). Per step a shard scores the embeddings of the whole global
batch against its positives (classes present in the batch) plus randomly
sampled negatives, `ceil(sample_rate * shard_size)` columns in all, applies
the AdaFace margin (`adaface_logits`) to those logits, and the softmax
cross-entropy is computed across shards from three reductions per row: the
maximum logit, the sum of exponentials and the target logit
(`sharded_cross_entropy`). At `sample_rate=1.0` and one shard this is the
dense `AdaFace` head exactly.

Memory per shard for C classes of dimension D in float32 with SGD momentum:
`2 * 4 * D * C / num_shards` bytes, plus `batch * num_sample` logits.
"""

import math

import keras
import tensorflow as tf

from catface_keras.layers.adaface import AdaFace, adaface_logits

# Logit of a padding column (a shard with fewer classes than its width).
PADDING_LOGIT = -1e9


def shard_bounds(num_classes, num_shards, shard_index):
    """`(start, size)`: the classes `[start, start + size)` that shard `shard_index` holds.

    The first `num_classes % num_shards` shards hold one class more.
    """
    if not 0 <= shard_index < num_shards:
        raise ValueError(
            f"`shard_index` must be in [0, {num_shards - 1}]. Received: shard_index={shard_index}"
        )
    base, extra = divmod(num_classes, num_shards)
    start = shard_index * base + min(shard_index, extra)
    return start, base + (1 if shard_index < extra else 0)


def sampled_columns(num_classes_in_shard, sample_rate, batch_size):
    """How many centres a shard scores per step: all of a small shard, else
    `ceil(sample_rate * size)`, at least enough for a batch of distinct positives."""
    wanted = max(math.ceil(sample_rate * num_classes_in_shard), batch_size)
    return min(num_classes_in_shard, wanted)


def sample_classes(labels, class_start, shard_size, num_sample, seed=None):
    """Chooses the shard columns scored this step: every positive, then random negatives.

    Args:
        labels: `(batch,)` global class indices of the (global) batch.
        class_start, shard_size: the shard's classes `[class_start, class_start + shard_size)`.
        num_sample: columns to keep (>= the distinct positives in the shard).
        seed: a stateless seed `(2,)`, or None for a stateful draw.

    Returns:
        `(columns, local_labels)`: `(num_sample,)` sorted shard-local column
        indices, and `(batch,)` each label's position in `columns`, or -1 for a
        label held by another shard.
    """
    labels = tf.cast(labels, tf.int32)
    local = labels - class_start
    in_shard = tf.logical_and(local >= 0, local < shard_size)
    positive = tf.scatter_nd(
        tf.expand_dims(tf.boolean_mask(local, in_shard), -1),
        tf.ones_like(tf.boolean_mask(local, in_shard), tf.float32),
        [shard_size],
    )
    if num_sample >= shard_size:
        columns = tf.range(shard_size, dtype=tf.int32)
    else:
        if seed is None:
            scores = tf.random.uniform([shard_size])
        else:
            scores = tf.random.stateless_uniform([shard_size], seed)
        # Positives score 2, above every negative's [0, 1).
        scores = tf.where(positive > 0, 2.0, scores)
        columns = tf.sort(tf.math.top_k(scores, num_sample, sorted=False).indices)
    position = tf.searchsorted(columns, tf.where(in_shard, local, 0))
    return columns, tf.where(in_shard, tf.cast(position, tf.int32), -1)


def sharded_cross_entropy(logits, local_labels, all_reduce_max, all_reduce_sum):
    """Softmax cross-entropy per row when the classes are split over shards.

    Args:
        logits: `(batch, num_sample)` this shard's (margin-applied) logits.
        local_labels: `(batch,)` target column in `logits`, -1 where another
            shard holds the target.
        all_reduce_max, all_reduce_sum: `fn(tensor) -> tensor` reducing over
            shards (identity for one shard). `tf.distribute` has no MAX
            all-reduce: gather the `(batch,)` maxima and take theirs.

    Returns:
        `(batch,)` float32 losses, equal on every shard.
    """
    # The maximum only keeps exp() in range: no gradient through it.
    row_max = tf.stop_gradient(all_reduce_max(tf.reduce_max(logits, axis=-1)))
    sum_exp = all_reduce_sum(tf.reduce_sum(tf.exp(logits - row_max[:, None]), axis=-1))
    target = tf.one_hot(tf.maximum(local_labels, 0), tf.shape(logits)[-1], dtype=logits.dtype)
    target *= tf.cast(local_labels >= 0, logits.dtype)[:, None]
    target_logit = all_reduce_sum(tf.reduce_sum(target * logits, axis=-1))
    return tf.math.log(sum_exp) + row_max - target_logit


@keras.saving.register_keras_serializable(package="catface")
class PartialFC(AdaFace):
    """One shard of a negative-sampled AdaFace head (Partial FC).

    Holds the class centres `[start, start + size)` of `shard_bounds(num_classes,
    num_shards, shard_index)` as `kernel` `(embedding_dim, size)`, and the same
    running norm statistics as `AdaFace`. `call` returns this shard's sampled
    logits and the targets' columns in them; `loss` the mean cross-entropy
    over all shards.

    With `num_shards=1` it is a drop-in training head: `loss(embeddings,
    labels)` is AdaFace's cross-entropy over the positives and
    `ceil(sample_rate * num_classes)` sampled classes (all of them at 1.0).
    With several shards the caller gives every shard the whole global batch
    and the cross-shard reductions (`all_reduce_max`, `all_reduce_sum`).

    Args:
        num_classes: identities over all shards.
        sample_rate: fraction of a shard's centres scored per step, in (0, 1].
        num_shards, shard_index: the split of the classes and this shard.
        seed: int for reproducible sampling (None: stateful random).
        margin, h, scale, t_alpha, eps: as `AdaFace`.

    Call arguments:
        embeddings: `(batch, embedding_dim)`, not normalised.
        labels: `(batch,)` global class indices.
        training: update the running statistics and sample negatives
            (otherwise all of the shard's centres are scored).

    Returns:
        `(logits, local_labels)`: `(batch, num_sample)` float32 and `(batch,)` int32.
    """

    def __init__(self, num_classes, sample_rate=1.0, num_shards=1, shard_index=0, seed=None,
                 **kwargs):
        super().__init__(num_classes, **kwargs)
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(
                f"`sample_rate` must be in (0, 1]. Received: sample_rate={sample_rate!r}"
            )
        if not isinstance(num_shards, int) or not 1 <= num_shards <= num_classes:
            raise ValueError(
                f"`num_shards` must be an int in [1, num_classes={num_classes}]. "
                f"Received: num_shards={num_shards!r}"
            )
        self.class_start, self.shard_size = shard_bounds(num_classes, num_shards, shard_index)
        self.sample_rate = sample_rate
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed) if seed is not None else None

    @property
    def num_centres(self):
        # AdaFace.build allocates this many centres: the shard's, not all num_classes.
        return self.shard_size

    def call(self, embeddings, labels, training=False):
        norms, norm_mean, norm_std = self.norms_and_statistics(embeddings, training)
        batch = embeddings.shape[0] or self.shard_size
        num_sample = self.shard_size
        if training:
            num_sample = sampled_columns(self.shard_size, self.sample_rate, batch)
        seed = None if self._seed_generator is None else self._seed_generator.next()
        columns, local_labels = sample_classes(
            labels, self.class_start, self.shard_size, num_sample, seed
        )
        logits = adaface_logits(
            self.cosine(embeddings, columns),
            norms,
            local_labels,
            norm_mean,
            norm_std,
            margin=self.margin,
            h=self.h,
            scale=self.scale,
            eps=self.eps,
        )
        return logits, local_labels

    def loss(self, embeddings, labels, training=True, all_reduce_max=None, all_reduce_sum=None):
        """Mean AdaFace cross-entropy over the batch (see `sharded_cross_entropy`)."""
        logits, local_labels = self(embeddings, labels, training=training)
        identity = lambda value: value  # noqa: E731
        losses = sharded_cross_entropy(
            logits, local_labels, all_reduce_max or identity, all_reduce_sum or identity
        )
        return tf.reduce_mean(losses)

    def compute_output_shape(self, embeddings_shape, labels_shape=None):
        return (embeddings_shape[0], None), (embeddings_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "num_shards": self.num_shards,
                "shard_index": self.shard_index,
                "seed": self.seed,
            }
        )
        return config
