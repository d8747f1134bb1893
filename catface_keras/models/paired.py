"""The training side both CATFace stages share: HQ/LQ pairs, a margin head, one loss dict.

A training model composes an inference model (`network`: a
`MultiBranchModel` or a `FusionModel`) with what only training needs: the
AdaFace margin head (dense, or Partial FC sharded over the replicas), the
loss weights, which images feed which loss. Its `.keras` file keeps the
network inside so that training can resume; every command that embeds,
evaluates or exports loads the network alone.

Both stages train on the same paired batches `({"hq": images, "lq": images},
{"identity": ..., "attributes": ...})` and differ only in the loss terms they
compute; this base owns `train_step`, `test_step`, one `Mean` tracker per
loss term plus the embedding norm, and the serialisation of the network and
the head.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from catface_keras.distribution import scale_loss_for_replicas
from catface_keras.layers.adaface import AdaFace
from catface_keras.layers.partial_fc import PartialFC, apply_sharded_head_gradients

DEFAULT_ADAFACE = {"margin": 0.4, "h": 0.333, "scale": 64.0, "t_alpha": 0.01}


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
        adaface: an `AdaFace` or `PartialFC` head.
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


def merge_known(defaults, overrides, argument):
    """`defaults` updated with `overrides` (as floats), refusing keys it does not know."""
    merged = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            raise ValueError(
                f"Unknown key {key!r} in `{argument}`. Expected keys from "
                f"{sorted(defaults)}. Received: {argument}={overrides!r}"
            )
        merged[key] = float(value)
    return merged


class PairedTraining(keras.Model):
    """A training model: `network` plus a margin head, `fit` on HQ/LQ pairs.

    Called on images it returns what `network` returns. Subclasses set
    `LOSS_TERMS` (the first is the optimised total, `"loss"`) and implement
    `paired_losses(data, training) -> (features, losses)`, where `features`
    holds at least `"embedding"` `(rows, D)` and `losses` is keyed by
    `LOSS_TERMS`; `scale_gradients` may rescale gradients before the update.

    Args:
        network: the inference model being trained (or its serialised config).
        num_classes: training identities (AdaFace classes).
        adaface: dict of `AdaFace` arguments (margin, h, scale, t_alpha).
        partial_fc_sample_rate: None for the dense AdaFace head; a rate in
            (0, 1] for Partial FC (`layers.partial_fc`): the class centres
            split over the replicas, each scoring its positives plus that
            fraction of its centres per step (for millions of identities).
        head_name: name of the margin head layer.
    """

    LOSS_TERMS = ("loss",)
    NETWORK_TYPES = ()

    def __init__(self, network, num_classes, adaface=None, partial_fc_sample_rate=None,
                 head_name="adaface", **kwargs):
        if isinstance(network, dict):
            network = keras.saving.deserialize_keras_object(network)
        if self.NETWORK_TYPES and not isinstance(network, self.NETWORK_TYPES):
            expected = " or ".join(kind.__name__ for kind in self.NETWORK_TYPES)
            raise ValueError(
                f"`network` must be a {expected}. Received: network={type(network).__name__}"
            )
        adaface = merge_known(DEFAULT_ADAFACE, adaface, "adaface")
        # A training head outside the inference graph; an attribute, so that its
        # class centres and running statistics are saved with the training model.
        self.adaface = margin_head(
            num_classes, network.embedding_dim, partial_fc_sample_rate, name=head_name, **adaface
        )
        images = keras.Input(network.input.shape[1:], name="images")
        super().__init__(inputs=images, outputs=network(images), **kwargs)
        self.network = network
        self.num_classes = num_classes
        self.adaface_config = adaface
        self.partial_fc_sample_rate = partial_fc_sample_rate
        self.head_name = head_name
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

    def class_centres(self):
        """`(num_classes, D)` numpy: the margin head's class centres, rows in class order."""
        if isinstance(self.adaface, PartialFC):
            return self.adaface.all_centres()
        return np.asarray(self.adaface.kernel.numpy()).T

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
        # Before `apply`, which may change the loss scale the centres' gradients carry.
        apply_sharded_head_gradients(
            self.optimizer, heads, centre_gradients, gradients, learning_rate
        )
        self.optimizer.apply(gradients, variables)
        return self._update_trackers(features, losses)

    def test_step(self, data):
        features, losses = self.paired_losses(data, training=False)
        return self._update_trackers(features, losses)

    def get_config(self):
        return {
            "network": keras.saving.serialize_keras_object(self.network),
            "num_classes": self.num_classes,
            "adaface": dict(self.adaface_config),
            "partial_fc_sample_rate": self.partial_fc_sample_rate,
            "head_name": self.head_name,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
