"""The training loop both CATFace stages share: HQ/LQ pairs, one loss dict.

Stage 1 (`MultiBranchModel`) and stage 2 (`FusionModel`) train on the same
paired batches `({"hq": images, "lq": images}, {"identity": ..., ...})` and
differ only in the loss terms they compute; this base owns `train_step`,
`test_step`, one `Mean` tracker per loss term plus the embedding norm, and
the tail of `get_config`.
"""

import keras
import tensorflow as tf
from keras import ops

from catface_keras.distribution import scale_loss_for_replicas
from catface_keras.layers.adaface import AdaFace
from catface_keras.layers.partial_fc import PartialFC


def margin_head(num_classes, embedding_dim, partial_fc_sample_rate=None, name="adaface",
                **adaface):
    """The built AdaFace training head: dense, or Partial FC sharded over the replicas.

    `partial_fc_sample_rate=None` gives the dense `AdaFace`; a rate in (0, 1]
    a `PartialFC` whose centres are split over the current strategy's replicas.
    """
    if partial_fc_sample_rate is None:
        head = AdaFace(num_classes, dtype="float32", name=name, **adaface)
    else:
        head = PartialFC(
            num_classes, sample_rate=partial_fc_sample_rate, dtype="float32", name=name, **adaface
        )
    head.build((None, embedding_dim))
    return head


def paired_adaface_loss(adaface, embedding, identity, training, copies=2):
    """Mean AdaFace cross-entropy of `concat([hq, lq])` embeddings.

    Args:
        adaface: an `AdaFace` head.
        embedding: `(copies * batch, D)`, the HQ images then their LQ copies
            (`copies=1`: HQ images only).
        identity: `(batch,)` class indices, shared by each HQ/LQ pair.
        training: whether AdaFace updates its running statistics.
    """
    identity = ops.concatenate([identity] * copies, axis=0)
    if isinstance(adaface, PartialFC):
        return adaface.loss(embedding, identity, training=training)
    logits = adaface(embedding, identity, training=training)
    return ops.mean(
        keras.losses.sparse_categorical_crossentropy(identity, logits, from_logits=True)
    )


class PairedTrainingModel(keras.Model):
    """A functional model whose `fit` takes HQ/LQ pairs and reports each loss term.

    Subclasses set `LOSS_TERMS` (the first is the optimised total, `"loss"`),
    call `init_trackers()` after the functional constructor, and implement
    `paired_losses(data, training) -> (features, losses)`, where `features`
    holds at least `"embedding"` `(rows, D)` and `losses` is keyed by
    `LOSS_TERMS`. `scale_gradients` may rescale gradients before the update.
    Trainable `PartialFC` heads are updated by each replica on its own shard,
    outside the optimizer, with the optimizer's learning rate, momentum and
    weight decay.
    """

    LOSS_TERMS = ("loss",)

    def init_trackers(self):
        self.loss_trackers = {term: keras.metrics.Mean(name=term) for term in self.LOSS_TERMS}
        self.feature_norm_tracker = keras.metrics.Mean(name="feature_norm")

    @property
    def metrics(self):
        return [*self.loss_trackers.values(), self.feature_norm_tracker]

    def paired_losses(self, data, training):
        raise NotImplementedError

    def scale_gradients(self, gradients, variables):
        return gradients

    def _update_trackers(self, features, losses):
        for term, value in losses.items():
            self.loss_trackers[term].update_state(value)
        self.feature_norm_tracker.update_state(ops.norm(features["embedding"], axis=-1))
        return {metric.name: metric.result() for metric in self.metrics}

    def sharded_heads(self):
        """The trainable `PartialFC` heads (their centres are not trainable variables)."""
        return [
            layer for layer in self._flatten_layers()
            if isinstance(layer, PartialFC) and layer.trainable
        ]

    def train_step(self, data):
        heads = self.sharded_heads()
        centres = [head.centres.value for head in heads]
        with tf.GradientTape() as tape:
            tape.watch(centres)
            features, losses = self.paired_losses(data, training=True)
            loss = self.optimizer.scale_loss(scale_loss_for_replicas(losses["loss"]))
        variables = self.trainable_variables
        gradients = tape.gradient(loss, [*variables, *centres])
        gradients, centre_gradients = gradients[: len(variables)], gradients[len(variables):]
        learning_rate = self.optimizer.learning_rate  # this step's, before `apply` counts it
        gradients = self.scale_gradients(gradients, variables)
        optimizer, finite = self.optimizer, None
        if heads and isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            # Undo this step's loss scale (`apply` may change it), and leave the
            # centres alone whenever the optimizer skips the step.
            finite = optimizer.check_finite([*gradients, *centre_gradients])
            # The scale `scale_loss` used (its variable exists once the optimizer is built).
            scale = optimizer.dynamic_scale if optimizer.built else optimizer.initial_scale
            learning_rate = learning_rate / tf.identity(scale)
            optimizer = optimizer.inner_optimizer
        self.optimizer.apply(gradients, variables)

        def update_centres():
            for head, gradient in zip(heads, centre_gradients):
                head.apply_gradient(
                    gradient,
                    learning_rate,
                    momentum=getattr(optimizer, "momentum", 0.0),
                    weight_decay=optimizer.weight_decay,
                )
            return tf.constant(True)

        if finite is None:
            update_centres()
        else:
            tf.cond(finite, update_centres, lambda: tf.constant(False))
        return self._update_trackers(features, losses)

    def test_step(self, data):
        features, losses = self.paired_losses(data, training=False)
        return self._update_trackers(features, losses)

    def config_tail(self):
        """The keys every subclass's `get_config` ends with."""
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
