"""Stage 2 of CATFace in training: the fused embedding learns with AdaFace on HQ and LQ images."""

import keras
from keras import ops

from catface_keras.models.fusion import FusionModel
from catface_keras.models.paired import PairedTraining, paired_adaface_loss


@keras.saving.register_keras_serializable(package="catface")
class FusionTraining(PairedTraining):
    """Trains a `FusionModel` (stage 2) on the stage-1 paired batches.

    `fit` takes `({"hq", "lq"}, {"identity", ...})` and trains the fused
    embedding with AdaFace on the HQ images and their LQ copies alike. The
    trained network is `self.network`.

    Args:
        network: the `FusionModel` to train.
        num_classes, adaface, partial_fc_sample_rate: the fused margin head
            (see `PairedTraining`).
        train_stage1: fine-tune the stage-1 weights too. Off by default:
            the stage-1 model is frozen (its batch norms run in inference
            mode) and only the fusion module and fused head learn.
        stage1_lr_multiplier: when fine-tuning, stage-1 gradients are scaled
            by this factor, which for SGD with momentum is a learning rate
            multiplier (weight decay still acts at the full rate).
    """

    NETWORK_TYPES = (FusionModel,)

    def __init__(
        self,
        network,
        num_classes,
        adaface=None,
        partial_fc_sample_rate=None,
        train_stage1=False,
        stage1_lr_multiplier=0.1,
        head_name="fused_adaface",
        **kwargs,
    ):
        if stage1_lr_multiplier < 0:
            raise ValueError(
                "`stage1_lr_multiplier` must be >= 0. "
                f"Received: stage1_lr_multiplier={stage1_lr_multiplier!r}"
            )
        super().__init__(
            network, num_classes, adaface, partial_fc_sample_rate, head_name=head_name, **kwargs
        )
        # After the Functional constructor, whose `trainable` argument (given
        # when loading) sets every sublayer. Layer by layer: TensorFlow's
        # attribute tracking skips `x.trainable = v` when v is already
        # x.trainable, and with it the recursion into sublayers.
        stage1 = self.network.stage1
        for layer in stage1._flatten_layers():
            layer.trainable = bool(train_stage1)
        if train_stage1:
            # Stage 1's own heads get no gradient from the fused loss; frozen,
            # weight decay and BN statistics leave them as stage 1 trained them.
            for layer in stage1.head_layers:
                for sublayer in layer._flatten_layers():
                    sublayer.trainable = False
        self.train_stage1 = bool(train_stage1)
        self.stage1_lr_multiplier = float(stage1_lr_multiplier)

    def paired_losses(self, data, training):
        inputs, targets = data[0], data[1]
        images = ops.concatenate([inputs["hq"], inputs["lq"]], axis=0)
        outputs = self.network(images, training=training)
        loss = paired_adaface_loss(self.adaface, outputs["embedding"], targets["identity"], training)
        return outputs, {"loss": loss}

    def scale_gradients(self, gradients, variables):
        if not self.train_stage1 or self.stage1_lr_multiplier == 1.0:
            return gradients
        stage1_ids = {id(variable) for variable in self.network.stage1.trainable_variables}
        return [
            g * self.stage1_lr_multiplier if g is not None and id(v) in stage1_ids else g
            for g, v in zip(gradients, variables)
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "train_stage1": self.train_stage1,
            "stage1_lr_multiplier": self.stage1_lr_multiplier,
        }
