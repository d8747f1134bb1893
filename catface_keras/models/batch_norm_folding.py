"""Batch norm folded into the convolution (or dense layer) before it, for inference.

At inference a batch norm is an affine map per channel with frozen statistics,
`y = (x - mean) * s + beta` with `s = gamma / sqrt(variance + epsilon)`; after a
convolution `x = W * u + b` it is the convolution `(W s) * u + (b - mean) s + beta`. Folding
every such pair removes a pass over each feature map. In an iResNet block (BN, conv, BN,
PReLU, conv, BN) the second and third batch norms fold, as do the stem's, the 1x1 shortcut's
and the embedding's final one (after its dense layer). The first batch norm of a block comes
*before* a zero-padded convolution, where folding would be inexact at the borders, so it
stays.
"""

import keras
import numpy as np

# Layers a following batch norm folds into: their output is linear in the kernel's last axis.
FOLDABLE_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)
# Attributes of the package's networks that the serving code reads; the folded model keeps them.
MODEL_ATTRIBUTES = ("image_size", "attribute_names", "embedding_dim")


def folded_weights(kernel, bias, batch_norm):
    """`(kernel, bias)` of the layer whose output `batch_norm` (at inference) normalises.

    Args:
        kernel: `(..., C)` the layer's kernel, output channels last.
        bias: `(C,)` its bias or None.
        batch_norm: a built `keras.layers.BatchNormalization` over the last axis.

    Returns:
        float32 `(..., C)` kernel and `(C,)` bias, computed in float64.
    """
    mean = np.asarray(batch_norm.moving_mean, np.float64)
    variance = np.asarray(batch_norm.moving_variance, np.float64)
    scale = 1.0 / np.sqrt(variance + batch_norm.epsilon)
    if batch_norm.scale:
        scale = scale * np.asarray(batch_norm.gamma, np.float64)
    shift = np.asarray(batch_norm.beta, np.float64) if batch_norm.center else 0.0
    bias = np.zeros_like(mean) if bias is None else np.asarray(bias, np.float64)
    kernel = np.asarray(kernel, np.float64) * scale
    return kernel.astype(np.float32), ((bias - mean) * scale + shift).astype(np.float32)


def _is_last_axis(batch_norm, rank):
    return batch_norm.axis in (-1, rank - 1)


def _foldable_pairs(model):
    """`{layer: batch_norm}` for each foldable layer whose only consumer is a batch norm."""
    nodes = [node for depth in model._nodes_by_depth.values() for node in depth]
    producers, consumers, calls = {}, {}, {}
    for node in nodes:
        if node.operation is None or node.is_input:
            continue
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for tensor in node.output_tensors:
            producers[id(tensor)] = node.operation
        for tensor in node.input_tensors:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    for tensor in model.outputs:
        consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    pairs = {}
    for node in nodes:
        batch_norm = node.operation
        if not isinstance(batch_norm, keras.layers.BatchNormalization) or node.is_input:
            continue
        if len(node.input_tensors) != 1 or calls[id(batch_norm)] != 1:
            continue
        tensor = node.input_tensors[0]
        layer = producers.get(id(tensor))
        if (
            type(layer) in FOLDABLE_LAYERS
            and layer.activation in (keras.activations.linear, None)
            and calls[id(layer)] == 1
            and consumers[id(tensor)] == 1
            and _is_last_axis(batch_norm, len(tensor.shape))
            and not batch_norm.renorm
        ):
            pairs[layer] = batch_norm
    return pairs


def _folded_layer(layer, batch_norm, input_shape):
    """A copy of `layer` with a bias, its weights folded with `batch_norm`'s."""
    folded = type(layer).from_config({**layer.get_config(), "use_bias": True})
    folded.build(input_shape)
    bias = layer.bias if layer.use_bias else None
    folded.set_weights(list(folded_weights(layer.kernel, bias, batch_norm)))
    return folded


def _identity(inputs, *args, **kwargs):
    return inputs


def fold_batch_norms(model):
    """A model that computes `model`'s inference outputs with the batch norms folded.

    Args:
        model: a functional Keras model (the package's networks are); nested functional
            models (stage 2's stage-1 feature network) are folded too.

    Returns:
        A functional `keras.Model` with the same inputs, outputs and output dtypes, each
        foldable batch norm folded into the convolution or dense layer before it (see the
        module docstring). It shares the other layers' weights with `model`, keeps
        `image_size`, `attribute_names` and `embedding_dim` where `model` has them, and
        counts its folds in `folded_batch_norms`. It is for inference only: a batch norm
        trained on would no longer exist.
    """
    folded, count = _fold(model)
    for name in MODEL_ATTRIBUTES:
        if hasattr(model, name):
            setattr(folded, name, getattr(model, name))
    folded.folded_batch_norms = count
    return folded


def _fold(model):
    """`(folded model, number of batch norms folded)` (see `fold_batch_norms`)."""
    if not hasattr(model, "_run_through_graph"):
        raise ValueError(
            "`model` must be a functional Keras model (built from keras.Input). "
            f"Received: model={type(model).__name__}"
        )
    pairs = _foldable_pairs(model)
    shapes = {
        id(node.operation): node.input_tensors[0].shape
        for depth in model._nodes_by_depth.values()
        for node in depth
        if node.operation in pairs
    }
    replacements = {
        id(layer): _folded_layer(layer, batch_norm, shapes[id(layer)])
        for layer, batch_norm in pairs.items()
    }
    removed = {id(batch_norm) for batch_norm in pairs.values()}
    count = len(pairs)
    for node_operation in {node.operation for depth in model._nodes_by_depth.values()
                           for node in depth if isinstance(node.operation, keras.Model)}:
        if hasattr(node_operation, "_run_through_graph"):
            replacements[id(node_operation)], inner = _fold(node_operation)
            count += inner

    def operation_fn(operation):
        if id(operation) in removed:
            return _identity
        return replacements.get(id(operation), operation)

    inputs = [
        keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
        for tensor in model.inputs
    ]
    outputs = model._run_through_graph(inputs, operation_fn=operation_fn)
    inputs = inputs[0] if len(inputs) == 1 else inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_folded"), count
