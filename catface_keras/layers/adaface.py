"""AdaFace: quality-adaptive margin softmax (Kim, Jain, Liu, CVPR 2022).

Implements docs/PAPER.md section 4 as the official code computes it: the feature
norm is the image-quality proxy; a running mean/std of the norms turns it
into a margin scaler g in [-1, 1] that moves the margin between angular
(ArcFace-like) and additive (CosFace-like) for the target class.
"""

import math

import keras
from keras import ops

from catface_keras.distribution import cross_replica_sum
from catface_keras.unit_vectors import l2_normalize_ops

NORM_CLIP_MIN = 0.001
NORM_CLIP_MAX = 100.0


def adaface_logits(cosine, norms, labels, norm_mean, norm_std, margin=0.4, h=0.333,
                   scale=64.0, eps=1e-3):
    """The AdaFace margin applied to clamped cosines, then scaled.

    Args:
        cosine: `(batch, num_classes)` cosines, already clamped to
            [-1 + eps, 1 - eps].
        norms: `(batch,)` feature norms, already clipped to [0.001, 100].
        labels: `(batch,)` int class indices.
        norm_mean, norm_std: scalars, the running statistics to use.

    Returns:
        `(batch, num_classes)` logits: s * cos(theta_j) for j != y and
        s * (cos(clip(theta_y - m g, eps, pi - eps)) - m - m g) for j = y,
        with g = clip(h (n - mu) / (sigma + eps), -1, 1).
    """
    scaler = ops.clip(h * (norms - norm_mean) / (norm_std + eps), -1.0, 1.0)
    target = ops.one_hot(labels, ops.shape(cosine)[-1], dtype="bool")
    target_cosine = ops.sum(ops.where(target, cosine, ops.zeros_like(cosine)), axis=-1)
    theta = ops.clip(ops.arccos(target_cosine) - margin * scaler, eps, math.pi - eps)
    target_logit = ops.cos(theta) - margin - margin * scaler
    logits = ops.where(target, ops.expand_dims(target_logit, -1), cosine)
    return logits * scale


def clamped_cosine(embeddings, centres, eps, centres_axis=1):
    """Cosines of `(batch, D)` embeddings with centres `(D, k)` (`centres_axis=1`)
    or `(k, D)` (`centres_axis=0`), clamped to [-1 + eps, 1 - eps]: `(batch, k)`."""
    embeddings = ops.cast(embeddings, "float32")
    normalized = l2_normalize_ops(embeddings)
    centres = l2_normalize_ops(centres, axis=0 if centres_axis == 1 else 1)
    if centres_axis == 0:
        centres = ops.transpose(centres)
    return ops.clip(ops.matmul(normalized, centres), -1.0 + eps, 1.0 - eps)


@keras.saving.register_keras_serializable(package="catface")
class AdaFace(keras.layers.Layer):
    """Normalised classifier with the AdaFace margin.

    Holds the class centres `kernel` `(embedding_dim, num_classes)` and the
    running mean/std of feature norms as layer state. In training the
    statistics are first updated with the current batch (its moments summed
    over all replicas, so every replica holds the same values) and then used
    for that batch's margins. Everything runs in float32.

    Args:
        num_classes: number of identities.
        margin: m (0.4). h: margin-scaler concentration (0.333; 0 gives CosFace).
        scale: s (64). t_alpha: momentum of the running statistics (0.01).
        eps: cosine clamp and division guard (1e-3).

    Call arguments:
        embeddings: `(batch, embedding_dim)`, not normalised.
        labels: `(batch,)` int class indices.
        training: whether to update the running statistics.

    Returns:
        `(batch, num_classes)` float32 logits for softmax cross-entropy.

    Example:
        >>> logits = AdaFace(num_classes=1000)(embeddings, labels, training=True)
    """

    def __init__(self, num_classes, margin=0.4, h=0.333, scale=64.0, t_alpha=0.01,
                 eps=1e-3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}"
            )
        if not 0.0 < t_alpha <= 1.0:
            raise ValueError(f"`t_alpha` must be in (0, 1]. Received: t_alpha={t_alpha!r}")
        self.num_classes = num_classes
        self.margin = margin
        self.h = h
        self.scale = scale
        self.t_alpha = t_alpha
        self.eps = eps

    def build(self, embeddings_shape, labels_shape=None):
        embedding_dim = embeddings_shape[-1]
        # Column norms near 1, like the official uniform + renorm initialiser.
        self.kernel = self.add_weight(
            shape=(embedding_dim, self.num_classes),
            initializer=self.centre_initializer(embedding_dim),
            name="kernel",
            autocast=False,
        )
        self.build_statistics()

    @staticmethod
    def centre_initializer(embedding_dim):
        return keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(embedding_dim))

    def build_statistics(self):
        """The running mean and std of the feature norms, shared by all replicas."""
        self.norm_mean = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(20.0),
            trainable=False,
            name="norm_mean",
            autocast=False,
            aggregation="mean",
        )
        self.norm_std = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(100.0),
            trainable=False,
            name="norm_std",
            autocast=False,
            aggregation="mean",
        )

    def cosine(self, embeddings):
        """`(batch, embedding_dim)` -> clamped cosines `(batch, num_classes)`."""
        return clamped_cosine(embeddings, self.kernel, self.eps)

    def norms_and_statistics(self, embeddings, training):
        """Feature norms `(batch,)` (no gradient) and the norm mean and std to use.

        In training the running statistics are updated with this batch first.
        """
        norms = ops.stop_gradient(
            ops.clip(ops.norm(ops.cast(embeddings, "float32"), axis=-1), NORM_CLIP_MIN,
                     NORM_CLIP_MAX)
        )
        if training:
            norm_mean, norm_std = self._update_statistics(norms)
        else:
            norm_mean, norm_std = self.norm_mean, self.norm_std
        return norms, ops.convert_to_tensor(norm_mean), ops.convert_to_tensor(norm_std)

    def _update_statistics(self, norms):
        """Updates the running mean/std with the batch's norms (all replicas)."""
        count = cross_replica_sum(ops.cast(ops.shape(norms)[0], "float32"))
        mean = cross_replica_sum(ops.sum(norms)) / ops.maximum(count, 1.0)
        squares = cross_replica_sum(ops.sum(ops.square(norms - mean)))
        # Unbiased, as torch.std; a one-element batch gives 0 rather than NaN.
        std = ops.sqrt(squares / ops.maximum(count - 1.0, 1.0))
        new_mean = self.t_alpha * mean + (1.0 - self.t_alpha) * self.norm_mean
        new_std = self.t_alpha * std + (1.0 - self.t_alpha) * self.norm_std
        self.norm_mean.assign(new_mean)
        self.norm_std.assign(new_std)
        return new_mean, new_std

    def call(self, embeddings, labels, training=False):
        norms, norm_mean, norm_std = self.norms_and_statistics(embeddings, training)
        return adaface_logits(
            self.cosine(embeddings),
            norms,
            ops.cast(labels, "int32"),
            norm_mean,
            norm_std,
            margin=self.margin,
            h=self.h,
            scale=self.scale,
            eps=self.eps,
        )

    def compute_output_shape(self, embeddings_shape, labels_shape=None):
        return (embeddings_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "margin": self.margin,
                "h": self.h,
                "scale": self.scale,
                "t_alpha": self.t_alpha,
                "eps": self.eps,
            }
        )
        return config
