"""Inference at a chosen precision: a saved network rebuilt to compute in bfloat16 or float16.

    model, precision = load_model_at_precision("runs/demo/stage2.keras", "auto")

A network's layers take their dtype policy when they are built, so a model loaded in
float32 keeps computing in float32 whatever the global policy says afterwards. The
package's networks build their layers in their constructors (their configs hold the
architecture, no per-layer dtype), so `model_at_precision` rebuilds the network from its
config under the mixed policy and copies the weights: variables stay float32, convolutions
and matrix products run in the low precision, and the layers the networks pin to float32
(the embedding output, whose norm is a quality signal, and the attribute logits) stay
float32. Inputs are float32 RGB in [0, 255] and the outputs float32, as before.
"""

import keras
import numpy as np

from catface_keras.choices import INFERENCE_PRECISIONS
from catface_keras.precision import choose_dtype_policy, dtype_policy
from catface_keras.unit_vectors import l2_normalize

# The Keras dtype policy of each precision: mixed, so that the weights stay float32 (the
# file's own values) and only the arithmetic is rounded.
PRECISION_POLICIES = {
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}
POLICY_PRECISIONS = {policy: name for name, policy in PRECISION_POLICIES.items()}


def resolve_precision(precision="auto", gpus=None, flags=None):
    """`"float32"`, `"bfloat16"` or `"float16"` for a name of `INFERENCE_PRECISIONS`.

    `auto`: float16 on a GPU, bfloat16 on a CPU with native bf16 arithmetic (AVX-512-BF16 or
    AMX), float32 on other CPUs, where emulated bf16 is slower than float32
    (`catface_keras.precision.choose_dtype_policy`; `gpus` and `flags` as there).
    """
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {INFERENCE_PRECISIONS}. Received: precision={precision!r}"
        )
    if precision != "auto":
        return precision
    return POLICY_PRECISIONS[choose_dtype_policy("auto", gpus=gpus, flags=flags)]


def model_precision(model):
    """The precision most of `model`'s convolutions (or, without any, dense layers) compute
    in; the few layers a network pins to float32 (its output heads) do not count."""
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    for kind in (keras.layers.Conv2D, keras.layers.Dense):
        policies = [layer.dtype_policy.name for layer in layers if isinstance(layer, kind)]
        if policies:
            policy = max(set(policies), key=policies.count)
            return POLICY_PRECISIONS.get(policy, policy)
    return POLICY_PRECISIONS.get(model.dtype_policy.name, model.dtype_policy.name)


def model_at_precision(model, precision="auto"):
    """`model` computing at `precision` (see the module docstring).

    Args:
        model: a package network (`MultiBranchModel`, `FusionModel`, `IResNetEmbedder`) whose
            config rebuilds it.
        precision: one of `INFERENCE_PRECISIONS`.

    Returns:
        `model` itself when it already computes at that precision, else a new model of the
        same class and weights.
    """
    precision = resolve_precision(precision)
    if model_precision(model) == precision:
        return model
    with dtype_policy(PRECISION_POLICIES[precision]):
        rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    weights = model.get_weights()
    if [w.shape for w in weights] != [tuple(w.shape) for w in rebuilt.weights]:
        raise ValueError(
            f"{type(model).__name__} {model.name!r} rebuilt from its config has other weights "
            "than the model; it cannot be run at another precision"
        )
    rebuilt.set_weights(weights)
    if model_precision(rebuilt) != precision:
        raise ValueError(
            f"{type(model).__name__} {model.name!r} sets its layers' dtypes itself; rebuilt "
            f"under the {PRECISION_POLICIES[precision]} policy it computes in "
            f"{model_precision(rebuilt)}. Received: precision={precision!r}"
        )
    return rebuilt


def load_model_at_precision(path, precision="auto", allow_embedder=False):
    """`(model, precision)`: the network in a `.keras` file computing at `precision`.

    `precision` is resolved (`auto` becomes what this machine runs fastest); `path` and
    `allow_embedder` as in `catface_keras.models.loading.load_model`.
    """
    from catface_keras.models.loading import load_model

    precision = resolve_precision(precision)
    return model_at_precision(load_model(path, allow_embedder=allow_embedder), precision), precision


def cosine_agreement(reference_embeddings, embeddings):
    """dict: `cosine_min` and `cosine_mean` over rows of the cosine between each row of
    `embeddings` and the same row of `reference_embeddings` (`(N, D)` each), and `images` (N)."""
    first, second = (l2_normalize(np.asarray(rows, np.float64))
                     for rows in (reference_embeddings, embeddings))
    if first.shape != second.shape or not len(first):
        raise ValueError(
            "the embeddings must be non-empty and of one shape. Received shapes: "
            f"{first.shape} and {second.shape}"
        )
    cosines = np.sum(first * second, axis=1)
    return {
        "cosine_min": float(cosines.min()),
        "cosine_mean": float(cosines.mean()),
        "images": int(len(first)),
    }


def embedding_agreement(reference, model, images):
    """How closely `model`'s embeddings follow `reference`'s on `images`.

    Args:
        reference: the network at float32.
        model: the same network at another precision.
        images: `(N, S, S, 3)` RGB in [0, 255].

    Returns:
        `cosine_agreement` of the two models' embeddings of the images.
    """
    images = np.asarray(images, np.float32)
    embeddings = [np.asarray(network(images, training=False)["embedding"])
                  for network in (reference, model)]
    return cosine_agreement(*embeddings)


def precision_record(precision, agreement=None):
    """What results files say about the precision: `precision`, its Keras `dtype_policy`
    and, when it is not float32, `cosine_to_float32` (a `cosine_agreement` dict)."""
    record = {"precision": precision, "dtype_policy": PRECISION_POLICIES[precision]}
    if agreement is not None:
        record["cosine_to_float32"] = agreement
    return record


def agreement_text(agreement):
    """One line for the console: the cosine to float32 of a `cosine_agreement` dict."""
    return (f"embedding cosine to float32 on the first {agreement['images']} image(s): "
            f"min {agreement['cosine_min']:.6f}, mean {agreement['cosine_mean']:.6f}")
