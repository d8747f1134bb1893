"""The network an export serves: at the chosen precision, batch norms folded.

    network = serving_model(load_model("stage2.keras"), precision="bfloat16")
    export_saved_model(network, "saved_models/catface")

Every export format serves this model, so they all compute the same function.
"""

from catface_keras.models.batch_norm_folding import fold_batch_norms
from catface_keras.models.inference_precision import model_at_precision


def serving_model(model, precision="float32", fold=True):
    """`model` computing at `precision` (`model_at_precision`), with its batch norms folded
    into the convolutions before them (`fold_batch_norms`) unless `fold` is False.

    Returns a model following the serving contract of `catface_keras.export.serving`
    (`image_size`, `attribute_names` where the network has attributes), inputs and outputs
    float32; `model` itself is left as it is.
    """
    model = model_at_precision(model, precision)
    return fold_batch_norms(model) if fold else model
