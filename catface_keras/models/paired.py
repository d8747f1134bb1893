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

    def train_step(self, data):
        with tf.GradientTape() as tape:
            features, losses = self.paired_losses(data, training=True)
            loss = self.optimizer.scale_loss(scale_loss_for_replicas(losses["loss"]))
        variables = self.trainable_variables
        gradients = self.scale_gradients(tape.gradient(loss, variables), variables)
        self.optimizer.apply(gradients, variables)
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
