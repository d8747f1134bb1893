"""Views of a model's functional graph that expose inner feature maps next to its outputs.

Gradient maps (tf-keras-vis) and activation attention maps need a conv map and the model's
output from one forward pass. `tap_layers` rebuilds the model's graph from its own layers
(shared weights, nothing copied), inlining nested functional models (the stage-2 model calls
the stage-1 feature network as one layer), and puts an `Identity` layer named
`<layer>_tap` after each requested layer. A tap is called exactly once, so tf-keras-vis can
find it by name and read its `output`, which the shared layers themselves no longer have
once they are called in two graphs.
"""

import collections
import re

import keras

TAP_SUFFIX = "_tap"

# iResNet block outputs: "stage1_block2_add" (shared trunk), "fr_stage4_block1_add" (a branch).
_BLOCK_OUTPUT = re.compile(r"^(?:(?P<branch>fr|sb)_)?stage(?P<stage>\d+)_block(?P<block>\d+)_add$")

TappedGraph = collections.namedtuple("TappedGraph", ["inputs", "outputs", "taps"])


def _same_layer(layer):
    return layer


def tap_layers(model, layer_names):
    """Rebuilds `model`'s graph with a tap after each of `layer_names`.

    Args:
        model: a functional Keras model (nested functional models are inlined).
        layer_names: names of single-output layers anywhere in `model`.

    Returns:
        `TappedGraph(inputs, outputs, taps)`: `inputs` new `keras.Input`(s), `outputs` the
        model's output structure (e.g. `{"embedding", "attribute_logits"}`) on them, and
        `taps` `{name: KerasTensor}`, each the output of the `Identity` layer `name + "_tap"`.
        Build views with `keras.Model(graph.inputs, ...)`.
    """
    wanted = set(layer_names)
    taps = {}

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.Model) and not isinstance(layer, keras.Sequential):
            inlined = keras.models.clone_model(
                layer, input_tensors=args[0], clone_function=_same_layer, call_function=call
            )
            return inlined.output
        output = layer(*args, **kwargs)
        if layer.name in wanted:
            if not isinstance(output, keras.KerasTensor):
                raise ValueError(
                    f"Layer {layer.name!r} has several outputs; tap a single-output layer. "
                    f"Received: layer_names={sorted(wanted)}"
                )
            output = keras.layers.Identity(name=layer.name + TAP_SUFFIX)(output)
            taps[layer.name] = output
        return output

    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential):
        raise ValueError(
            f"`model` must be a functional Keras model. Received: model={type(model).__name__}"
        )
    clone = keras.models.clone_model(model, clone_function=_same_layer, call_function=call)
    missing = sorted(wanted - set(taps))
    if missing:
        raise ValueError(
            f"Layers {missing} are not in the model's graph. Received: layer_names="
            f"{sorted(wanted)}"
        )
    return TappedGraph(clone.input, clone.output, taps)


def all_layer_names(model):
    """Names of every layer of `model`, nested models included, in graph order."""
    names = []
    for layer in model.layers:
        names.append(layer.name)
        if isinstance(layer, keras.Model):
            names.extend(all_layer_names(layer))
    return names


def iresnet_block_layers(model):
    """The iResNet block outputs that the visualisations look at, by layer name.

    Returns:
        dict: `first` the output of the first stage (shared trunk, else the FR branch's),
        `fr_last` and `sb_last` the last block output of each branch: the branch's last conv
        map F, which feeds its self-attention (docs/PAPER.md section 2).
    """
    blocks = collections.defaultdict(list)
    for name in all_layer_names(model):
        match = _BLOCK_OUTPUT.match(name)
        if match:
            key = (int(match["stage"]), int(match["block"]))
            blocks[match["branch"]].append((key, name))
    if not blocks["fr"] or not blocks["sb"]:
        raise ValueError(
            "`model` must contain the iResNet block outputs of both branches "
            "(layers named like 'fr_stage4_block2_add' and 'sb_stage4_block2_add'). "
            f"Received: model={model.name!r}"
        )
    trunk = blocks[None] or blocks["fr"]
    first_stage = min(key[0] for key, _ in trunk)
    return {
        "first": max((key, name) for key, name in trunk if key[0] == first_stage)[1],
        "fr_last": max(blocks["fr"])[1],
        "sb_last": max(blocks["sb"])[1],
    }
