"""Partial FC: a class-sharded, negative-sampled AdaFace head for millions of identities.

The class centres, `(C, D)` rows (the dense head's `(D, C)` kernel
transposed, so that a sampled step's gradient stays sparse), are split over
the replicas of the distribution strategy, one shard of `ceil(C / num_shards)`
rows each (the last shards padded). A shard lives only on its replica, with its own SGD
momentum: the centres are per-replica (`on_read`) variables that are not
all-reduced, and each replica updates its own shard (`apply_gradient`), as
insightface's arcface_torch does with one process per GPU.

Per step every replica gathers the embeddings of the whole global batch
(`all_gather`, whose gradient returns each replica its rows), scores them
against its positives (classes present in the batch) plus randomly sampled
negatives, `ceil(sample_rate * shard_width)` centres in all, applies the
AdaFace margin (`adaface_logits`) to those logits, and the softmax
cross-entropy is assembled across shards from three reductions per row: the
maximum logit, the sum of exponentials and the target logit
(`sharded_cross_entropy`). At `sample_rate=1.0` this trains exactly as the
dense `AdaFace` head (tests/distribution/test_partial_fc_training.py).

Memory per shard for C classes of dimension D in float32 with SGD momentum:
`2 * 4 * D * C / num_shards` bytes, plus `global_batch * num_sample` logits.
Saved files hold all C centres, so a run resumes on any number of replicas; the
initial centres are drawn whole and split, so they do not depend on the replica
count either (both cost one full `(C, D)` array in host memory while they run).

Why the Keras optimizer does not own the centres: a Keras optimizer holds
one slot per variable and applies one all-reduced gradient to every replica's
copy, while each replica here holds other rows and must apply its own
gradient to them alone. So the centres are not trainable variables: the
training step (`apply_sharded_head_gradients`) takes their gradient beside
the network's and runs the same SGD step as `keras.optimizers.SGD` on each
shard (tests/layers/test_partial_fc_sgd.py compares the two step for step),
undoing a `LossScaleOptimizer`'s scale and skipping the steps it skips.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from catface_keras.distribution import num_replicas
from catface_keras.layers.adaface import AdaFace, adaface_logits, clamped_cosine

# Logit of a padding row (a shard with fewer classes than its width): exp() is 0.
PADDING_LOGIT = -1e9


def shard_width(num_classes, num_shards):
    """Columns of every shard: `ceil(num_classes / num_shards)`."""
    return -(-num_classes // num_shards)


def shard_bounds(num_classes, num_shards, shard_index):
    """`(start, size)`: the classes `[start, start + size)` that shard `shard_index` holds.

    Shards are `shard_width` columns wide; the last ones hold fewer classes
    (possibly none) and pad the rest.
    """
    if not 0 <= shard_index < num_shards:
        raise ValueError(
            f"`shard_index` must be in [0, {num_shards - 1}]. Received: shard_index={shard_index}"
        )
    width = shard_width(num_classes, num_shards)
    start = min(shard_index * width, num_classes)
    return start, min(width, num_classes - start)


def sampled_columns(width, sample_rate):
    """Centres a shard scores per step, `ceil(sample_rate * width)`, before
    `sample_classes` raises it to the step's distinct positives."""
    return min(width, math.ceil(sample_rate * width))


def sample_classes(labels, class_start, shard_size, num_sample, seed=None, width=None):
    """Chooses the shard columns scored this step: every positive, then random negatives.

    Args:
        labels: `(batch,)` global class indices of the (global) batch.
        class_start, shard_size: the shard's classes `[class_start, class_start + shard_size)`
            (ints or scalar tensors).
        num_sample: columns to keep; raised to the distinct positives in the
            shard when they are more.
        seed: a stateless seed `(2,)`, or None for a stateful draw.
        width: the shard's columns (default `shard_size`); columns from
            `shard_size` on are padding, scored only when `num_sample` exceeds
            `shard_size`.

    Returns:
        `(columns, local_labels)`: `(max(num_sample, positives),)` sorted shard-local column
        indices, and `(batch,)` each label's position in `columns`, or -1 for a
        label held by another shard.
    """
    width = shard_size if width is None else width
    labels = tf.cast(labels, tf.int32)
    local = labels - class_start
    in_shard = tf.logical_and(local >= 0, local < shard_size)
    if num_sample >= width:
        columns = tf.range(width, dtype=tf.int32)
    else:
        if seed is None:
            scores = tf.random.uniform([width])
        else:
            scores = tf.random.stateless_uniform([width], seed)
        # Positives score 2, above every negative's [0, 1); padding -1, below.
        scores = tf.where(tf.range(width) < shard_size, scores, -1.0)
        positive = tf.scatter_nd(
            tf.expand_dims(tf.boolean_mask(local, in_shard), -1),
            tf.ones_like(tf.boolean_mask(local, in_shard), tf.float32),
            [width],
        )
        scores = tf.where(positive > 0, 2.0, scores)
        count = tf.maximum(num_sample, tf.reduce_sum(tf.cast(positive > 0, tf.int32)))
        columns = tf.sort(tf.math.top_k(scores, count, sorted=False).indices)
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


def replica_reductions():
    """`(all_gather, all_reduce_max, all_reduce_sum)` over the current replicas.

    Identities outside a replica context or with one replica. All three are
    differentiable: the gradient of a gathered tensor comes back summed over
    replicas to the replica that gave the rows.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        identity = lambda value: value  # noqa: E731
        return identity, identity, identity

    def gather(value):
        return context.all_gather(value, axis=0)

    def reduce_max(value):
        return tf.reduce_max(context.all_gather(value[None], axis=0), axis=0)

    def reduce_sum(value):
        return context.all_reduce(tf.distribute.ReduceOp.SUM, value)

    return gather, reduce_max, reduce_sum


def _strategy_of(variable):
    """The strategy a (Keras) variable was created under; the current one for a plain variable."""
    return getattr(variable.value, "distribute_strategy", None) or tf.distribute.get_strategy()


def replica_index():
    """This replica's index in its sync group (0 outside a replica context), an int32 scalar."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


@keras.saving.register_keras_serializable(package="catface")
class PartialFC(AdaFace):
    """A negative-sampled AdaFace head whose centres are sharded over replicas (Partial FC).

    Built under a distribution strategy with R replicas (`num_shards=None`),
    each replica holds `centres` `(ceil(num_classes / R), embedding_dim)`, one
    row per class of `shard_bounds(num_classes, R, replica)` (the transpose of
    the dense head's `kernel` columns), plus their SGD `momentum`. Neither is
    trainable by Keras' optimizer: the training step passes the gradient of
    `centres` to `apply_gradient`, which each replica applies to its own
    shard. The running norm statistics are AdaFace's, shared by all replicas.

    Args:
        num_classes: identities over all shards.
        sample_rate: fraction of a shard's centres scored per training step,
            in (0, 1]; the batch's positives are always among them.
        num_shards: shards; None (the default) takes the strategy's replica
            count when built, so a saved model loads on any number of replicas.
        shard_index: which shard a single-replica layer holds (tests and
            tools); None follows the replica context.
        seed: int for reproducible sampling (None: stateful random).
        margin, h, scale, t_alpha, eps: as `AdaFace`.

    Call arguments:
        embeddings: `(batch, embedding_dim)` this replica's embeddings.
        labels: `(batch,)` global class indices.
        training: update the running statistics and sample negatives
            (otherwise all of the shard's centres are scored).

    Returns:
        `(logits, local_labels)` for the global batch (all replicas' rows, in
        replica order): `(global_batch, num_sample)` float32 and
        `(global_batch,)` int32, -1 where another shard holds the target.
    """

    def __init__(self, num_classes, sample_rate=1.0, num_shards=None, shard_index=None,
                 seed=None, **kwargs):
        super().__init__(num_classes, **kwargs)
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(
                f"`sample_rate` must be in (0, 1]. Received: sample_rate={sample_rate!r}"
            )
        if num_shards is not None and (
            not isinstance(num_shards, int) or not 1 <= num_shards <= num_classes
        ):
            raise ValueError(
                f"`num_shards` must be None or an int in [1, num_classes={num_classes}]. "
                f"Received: num_shards={num_shards!r}"
            )
        if shard_index is not None and num_shards is None:
            raise ValueError("`shard_index` needs `num_shards`.")
        if shard_index is not None:
            shard_bounds(num_classes, num_shards, shard_index)  # checks the range
        self.sample_rate = sample_rate
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed) if seed is not None else None

    @property
    def shards(self):
        """Shards the centres are split into (the replica count when `num_shards` is None)."""
        return self.num_shards or num_replicas()

    @property
    def width(self):
        """Centres per shard (rows of `centres`), padding included."""
        return shard_width(self.num_classes, self._built_shards)

    def build(self, embeddings_shape, labels_shape=None):
        self._built_shards = self.shards
        embedding_dim = embeddings_shape[-1]
        # Rows, as arcface_torch: a sampled row's gradient stays sparse.
        self.centres = self._shard_variable("centres", embedding_dim)
        self.build_statistics()
        self.momentum = self._shard_variable("momentum", embedding_dim)
        # Drawn whole, as the dense head draws its (D, C) kernel, and split: the
        # centres do not depend on the number of replicas (a cluster run equals
        # one process, and the dense head's columns are these rows).
        initial = self.centre_initializer(embedding_dim)((embedding_dim, self.num_classes))
        self._assign_shards(self.centres, np.asarray(initial).T)

    def _shard_variable(self, name, embedding_dim):
        # One value per replica, never all-reduced: each replica's own shard.
        # (`Layer.add_weight` takes no `synchronization`.)
        with keras.name_scope(self.name, caller=self):
            variable = keras.Variable(
                keras.initializers.get("zeros"), shape=(self.width, embedding_dim),
                dtype="float32", trainable=False, autocast=False, name=name,
                synchronization="on_read", aggregation="only_first_replica",
            )
        self._track_variable(variable)
        return variable

    def _shard(self):
        """`(start, size)` of this replica's classes, as int32 scalars."""
        index = replica_index() if self.shard_index is None else tf.constant(self.shard_index)
        width = self.width
        start = tf.minimum(index * width, self.num_classes)
        return start, tf.minimum(width, self.num_classes - start)

    def call(self, embeddings, labels, training=False):
        gather, _, _ = replica_reductions()
        # The statistics come from this replica's rows, summed over replicas by AdaFace.
        norms, norm_mean, norm_std = self.norms_and_statistics(embeddings, training)
        norms = gather(norms)
        embeddings = gather(tf.cast(embeddings, tf.float32))
        labels = gather(tf.cast(labels, tf.int32))
        width = self.width
        num_sample = width
        if training:
            num_sample = sampled_columns(width, self.sample_rate)
        seed = None if self._seed_generator is None else self._seed_generator.next()
        start, size = self._shard()
        columns, local_labels = sample_classes(labels, start, size, num_sample, seed, width)
        cosine = clamped_cosine(
            embeddings, tf.gather(self.centres.value, columns), self.eps, centres_axis=0
        )
        logits = adaface_logits(
            cosine,
            norms,
            local_labels,
            norm_mean,
            norm_std,
            margin=self.margin,
            h=self.h,
            scale=self.scale,
            eps=self.eps,
        )
        logits = tf.where(columns[None, :] < size, logits, PADDING_LOGIT)
        return logits, local_labels

    def loss(self, embeddings, labels, training=True):
        """Mean AdaFace cross-entropy over the global batch, the same on every replica.

        Called in each replica with its own rows. Divided by the replica count
        like any per-replica loss (Keras sums gradients over replicas), its
        gradients are exact: the cross-replica sums carry the other replicas'
        share back (see `replica_reductions`).
        """
        logits, local_labels = self(embeddings, labels, training=training)
        _, reduce_max, reduce_sum = replica_reductions()
        return tf.reduce_mean(sharded_cross_entropy(logits, local_labels, reduce_max, reduce_sum))

    def apply_gradient(self, gradient, learning_rate, momentum, weight_decay=None):
        """One SGD step on this replica's shard, as `keras.optimizers.SGD` computes it.

        `gradient`: of `centres`, dense or `tf.IndexedSlices` (the sampled rows).
        Decoupled weight decay first (`w -= lr * wd * w`), then
        `m = momentum * m - lr * g; w += m`, on every row as for a dense
        variable (only the sampled rows have a gradient). Centres are not
        clipped with the network's gradients (arcface_torch clips the backbone only).
        """
        if gradient is None:
            return
        learning_rate = tf.cast(learning_rate, tf.float32)
        centres = self.centres.value
        if weight_decay:
            centres.assign(centres - centres * (weight_decay * learning_rate))
        step = self.momentum.value * momentum if momentum else tf.zeros_like(centres)
        if isinstance(gradient, tf.IndexedSlices):
            # Per-replica variables take no scatter: scatter into the new value.
            step = tf.tensor_scatter_nd_sub(
                step, gradient.indices[:, None], gradient.values * learning_rate
            )
        else:
            step = step - gradient * learning_rate
        if momentum:
            self.momentum.assign(step)
        centres.assign_add(step)

    # === All centres in saved files ===

    def _all_shards(self, variable):
        """`(num_classes, embedding_dim)` numpy: every replica's rows, in class order."""
        strategy = _strategy_of(variable)
        if strategy.num_replicas_in_sync == 1:
            value = np.asarray(variable.value)
        else:
            with strategy.scope():
                local = strategy.run(lambda: tf.identity(variable.value))
                value = strategy.gather(local, axis=0).numpy()
        return value[: self.num_classes]

    def _assign_shards(self, variable, value):
        """Gives each replica its rows of `value` `(num_classes, embedding_dim)`."""
        width = self.width
        padded = np.zeros((width * self._built_shards, value.shape[1]), np.float32)
        padded[: value.shape[0]] = value
        padded = tf.constant(padded)
        if self.shard_index is not None:
            variable.assign(padded[self.shard_index * width:(self.shard_index + 1) * width])
            return

        def assign():
            start = replica_index() * width
            variable.assign(padded[start:start + width])

        strategy = _strategy_of(variable)
        if strategy.num_replicas_in_sync == 1:
            assign()
        else:
            with strategy.scope():
                strategy.run(tf.function(assign))

    def all_centres(self):
        """`(num_classes, embedding_dim)` numpy: the centres of every replica, in class order."""
        return self._all_shards(self.centres)

    def save_own_variables(self, store):
        store["centres"] = self.all_centres()
        store["momentum"] = self._all_shards(self.momentum)
        store["norm_mean"] = np.asarray(self.norm_mean.value)
        store["norm_std"] = np.asarray(self.norm_std.value)

    def load_own_variables(self, store):
        expected = (self.num_classes, self.centres.shape[1])
        for name in ("centres", "momentum"):
            if name not in store:
                raise ValueError(
                    f"PartialFC {self.name!r}: the saved weights hold no `{name}` entry. "
                    f"Received: {sorted(store.keys())}"
                )
            value = np.asarray(store[name])
            if value.shape != expected:
                raise ValueError(
                    f"PartialFC {self.name!r}: saved `{name}` has shape {value.shape}, "
                    f"expected {expected} (num_classes, embedding_dim)."
                )
            self._assign_shards(getattr(self, name), value)
        self.norm_mean.assign(np.asarray(store["norm_mean"]))
        self.norm_std.assign(np.asarray(store["norm_std"]))

    def compute_output_shape(self, embeddings_shape, labels_shape=None):
        return (None, None), (None,)

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


def apply_sharded_head_gradients(optimizer, heads, centre_gradients, network_gradients,
                                 learning_rate):
    """Each replica's SGD step on its shard of every `PartialFC` head in `heads`.

    Call it in `train_step` beside `optimizer.apply(network_gradients, ...)`,
    with `learning_rate` read before `apply` (which advances the schedule).
    Momentum and decoupled weight decay are the optimizer's. Under a
    `LossScaleOptimizer` the centres' gradients carry the loss scale, which is
    divided out, and the centres stay put on a step the optimizer skips
    because a gradient is not finite.
    """
    if not heads:
        return
    finite = None
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        finite = optimizer.check_finite([*network_gradients, *centre_gradients])
        # The scale `scale_loss` used (its variable exists once the optimizer is built).
        scale = optimizer.dynamic_scale if optimizer.built else optimizer.initial_scale
        # Unscale the gradients, not the learning rate, which weight decay uses too.
        inverse = 1.0 / tf.cast(tf.identity(scale), tf.float32)
        centre_gradients = [_scaled(gradient, inverse) for gradient in centre_gradients]
        optimizer = optimizer.inner_optimizer

    def update():
        for head, gradient in zip(heads, centre_gradients):
            head.apply_gradient(
                gradient,
                learning_rate,
                momentum=getattr(optimizer, "momentum", 0.0),
                weight_decay=optimizer.weight_decay,
            )
        return tf.constant(True)

    if finite is None:
        update()
    else:
        tf.cond(finite, update, lambda: tf.constant(False))


def _scaled(gradient, factor):
    """`gradient * factor` for a dense gradient, an `IndexedSlices` or None."""
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor
