"""MFFNL: the multi-scale depthwise feed-forward of CATF (docs/PAPER.md section 5, step 2)."""

import itertools

import keras
from keras import ops

from catface_keras.layers.batch_norm import batch_norm


def split_channels(channels, parts):
    """Channel counts of `parts` groups, as equal as possible, the first ones larger.

    >>> split_channels(10, 3)
    [4, 3, 3]
    """
    base, remainder = divmod(channels, parts)
    return [base + (1 if index < remainder else 0) for index in range(parts)]


@keras.saving.register_keras_serializable(package="catface")
class MDConv(keras.layers.Layer):
    """Mixed depthwise convolution: channel groups with kernels of different sizes.

    The channels are split into one group per kernel size (as MixConv does,
    so the output keeps the input's channel count); each group goes through
    its own depthwise stream and the results are concatenated in order.
    Kernels of size 3 or less are square; larger ones are factorised into a
    1 x k then a k x 1 depthwise conv (docs/PAPER.md section 5: 3x3; 5x5 as 1x5 then 5x1;
    7x7 as 1x7 then 7x1), which has the k x k receptive field for 2k weights.

    Args:
        kernel_sizes: one odd kernel size per stream.
        use_bias: biases on the depthwise convs.

    Call arguments:
        inputs: `(batch, H, W, C)` with `C >= len(kernel_sizes)`.

    Returns:
        `(batch, H, W, C)`.
    """

    def __init__(self, kernel_sizes=(3, 5, 7), use_bias=False, **kwargs):
        super().__init__(**kwargs)
        kernel_sizes = tuple(kernel_sizes)
        if not kernel_sizes or any(
            not isinstance(k, int) or k < 1 or k % 2 == 0 for k in kernel_sizes
        ):
            raise ValueError(
                "`kernel_sizes` must be a non-empty sequence of odd positive ints. "
                f"Received: kernel_sizes={kernel_sizes!r}"
            )
        self.kernel_sizes = kernel_sizes
        self.use_bias = use_bias

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels < len(self.kernel_sizes):
            raise ValueError(
                f"MDConv needs at least one channel per kernel size ({len(self.kernel_sizes)}). "
                f"Received: input_shape={input_shape}"
            )
        self.group_channels = split_channels(channels, len(self.kernel_sizes))
        self.streams = []
        for size, group in zip(self.kernel_sizes, self.group_channels):
            shapes = [(size, size)] if size <= 3 else [(1, size), (size, 1)]
            stream = []
            group_shape = (*input_shape[:-1], group)
            for kernel in shapes:
                conv = keras.layers.DepthwiseConv2D(
                    kernel,
                    padding="same",
                    use_bias=self.use_bias,
                    name=f"depthwise_{size}_{kernel[0]}x{kernel[1]}",
                    dtype=self.dtype_policy,
                )
                conv.build(group_shape)
                stream.append(conv)
            self.streams.append(stream)

    def stream_outputs(self, inputs):
        """The output of each stream, in kernel-size order (for inspection)."""
        if not self.built:
            self.build(inputs.shape)
        boundaries = list(itertools.accumulate(self.group_channels[:-1]))
        groups = ops.split(inputs, boundaries, axis=-1) if boundaries else [inputs]
        outputs = []
        for group, stream in zip(groups, self.streams):
            for conv in stream:
                group = conv(group)
            outputs.append(group)
        return outputs

    def call(self, inputs):
        return ops.concatenate(self.stream_outputs(inputs), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_sizes": list(self.kernel_sizes), "use_bias": self.use_bias})
        return config


@keras.saving.register_keras_serializable(package="catface")
class MFFNL(keras.layers.Layer):
    """Multi-scale feed-forward: expand, MDConv with a shortcut, project back.

        h = BN(GELU(Conv1x1_{rC}(x)))
        h = h + BN(GELU(MDConv(h)))
        y = BN(GELU(Conv1x1_{C}(h)))

    GELU and batch normalisation follow each layer, as docs/PAPER.md section 5 describes.
    With `residual=True` the layer returns `x + y`, as a transformer's
    feed-forward does; docs/PAPER.md leaves this open.

    Args:
        expansion: ratio r of the hidden channels to C (4).
        kernel_sizes: MDConv kernel sizes.
        synchronized_batch_norm: batch moments over all replicas.
        residual: return `x + y` rather than `y`.

    Call arguments:
        inputs: `(batch, H, W, C)`.

    Returns:
        `(batch, H, W, C)`.
    """

    def __init__(
        self,
        expansion=4,
        kernel_sizes=(3, 5, 7),
        synchronized_batch_norm=False,
        residual=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(expansion, int) or expansion < 1:
            raise ValueError(f"`expansion` must be a positive int. Received: expansion={expansion!r}")
        self.expansion = expansion
        self.kernel_sizes = tuple(kernel_sizes)
        self.synchronized_batch_norm = synchronized_batch_norm
        self.residual = residual

    def build(self, input_shape):
        channels = input_shape[-1]
        hidden_shape = (*input_shape[:-1], channels * self.expansion)
        sync = self.synchronized_batch_norm
        self.expand = self._pointwise(channels * self.expansion, "expand")
        self.expand.build(input_shape)
        self.expand_norm = batch_norm("expand_bn", sync, dtype=self.dtype_policy)
        self.expand_norm.build(hidden_shape)
        self.mdconv = MDConv(self.kernel_sizes, name="mdconv", dtype=self.dtype_policy)
        self.mdconv.build(hidden_shape)
        self.mdconv_norm = batch_norm("mdconv_bn", sync, dtype=self.dtype_policy)
        self.mdconv_norm.build(hidden_shape)
        self.project = self._pointwise(channels, "project")
        self.project.build(hidden_shape)
        self.project_norm = batch_norm("project_bn", sync, dtype=self.dtype_policy)
        self.project_norm.build(input_shape)

    def _pointwise(self, filters, name):
        return keras.layers.Conv2D(filters, 1, use_bias=False, name=name, dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        hidden = self.expand_norm(ops.gelu(self.expand(inputs)), training=training)
        hidden = hidden + self.mdconv_norm(ops.gelu(self.mdconv(hidden)), training=training)
        outputs = self.project_norm(ops.gelu(self.project(hidden)), training=training)
        return inputs + outputs if self.residual else outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "expansion": self.expansion,
                "kernel_sizes": list(self.kernel_sizes),
                "synchronized_batch_norm": self.synchronized_batch_norm,
                "residual": self.residual,
            }
        )
        return config
