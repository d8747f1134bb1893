"""What a saved CATFace file holds, and that files of older versions still load."""

import inspect
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.models import (
    FusionModel,
    FusionTraining,
    MultiBranchModel,
    MultiBranchTraining,
    load_model,
)
from tiny_models import paired_batch, tiny_model

DATA = pathlib.Path(__file__).parent / "data"


def test_files_saved_before_the_inference_training_split_load_with_equal_outputs():
    """Written by the version before the split (tiny models, one training step each; stage 1
    with index diversion and A-SKD low-resolution LQ images, whose training state the file
    held): they load as inference models with their training arguments dropped."""
    reference = np.load(DATA / "outputs_before_inference_split.npz")
    for stage, kind in (("stage1", MultiBranchModel), ("stage2", FusionModel)):
        model = load_model(DATA / f"{stage}_before_inference_split.keras")
        assert type(model) is kind
        config = model.get_config()
        assert not {"num_classes", "adaface", "train_stage1", "index_diversion_weight"} & set(
            config
        )
        outputs = model.predict(reference["images"], verbose=0)
        for key in ("embedding", "attribute_logits"):
            np.testing.assert_array_equal(outputs[key], reference[f"{stage}_{key}"])


def test_a_training_file_resumes_whole_and_loads_as_its_network(tmp_path):
    keras.utils.set_random_seed(0)
    training = tiny_model(dropout=0.0)
    training.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    training.fit(tf.data.Dataset.from_tensors(paired_batch()), verbose=0)
    training.save(tmp_path / "training.keras")
    restored = keras.models.load_model(tmp_path / "training.keras")
    assert type(restored) is MultiBranchTraining
    np.testing.assert_array_equal(restored.adaface.kernel.numpy(), training.adaface.kernel.numpy())
    assert float(restored.adaface.norm_mean) == float(training.adaface.norm_mean)
    network = load_model(tmp_path / "training.keras")
    assert type(network) is MultiBranchModel
    images = paired_batch(seed=2)[0]["hq"]
    np.testing.assert_array_equal(
        network.predict(images, verbose=0)["embedding"],
        training.network.predict(images, verbose=0)["embedding"],
    )


def test_stage2_training_freezes_stage1_and_owns_the_fused_head():
    network = FusionModel(tiny_model().network, fusion="concat")
    training = FusionTraining(network, num_classes=6)
    assert training.adaface.name == "fused_adaface"
    assert not any(layer.trainable for layer in network.stage1._flatten_layers() if layer.weights)
    head = {id(v) for v in training.adaface.trainable_variables}
    fusion = {id(v) for v in network.trainable_variables}
    assert {id(v) for v in training.trainable_variables} == head | fusion
    with pytest.raises(ValueError, match="`network` must be a FusionModel. Received: network="):
        FusionTraining(tiny_model().network, num_classes=6)
    with pytest.raises(ValueError, match="`network` must be a MultiBranchModel"):
        MultiBranchTraining(network, num_classes=6)


@pytest.mark.parametrize(
    "build",
    [
        lambda: tiny_model().network,
        lambda: FusionModel(tiny_model().network, fusion="concat"),
        lambda: tiny_model(),
        lambda: FusionTraining(FusionModel(tiny_model().network, fusion="add"), num_classes=6),
    ],
    ids=["MultiBranchModel", "FusionModel", "MultiBranchTraining", "FusionTraining"],
)
def test_every_constructor_argument_is_in_the_config(build):
    model = build()
    parameters = set(inspect.signature(type(model).__init__).parameters) - {"self", "kwargs"}
    assert parameters <= set(model.get_config())
    again = type(model).from_config(model.get_config())
    assert again.get_config() == model.get_config()


def test_imported_backbone_files_of_older_versions_load_into_the_composed_embedder():
    """`IResNetEmbedder` now composes an `IResNetBackbone`; a file written before (by
    `catface import-weights`) loads with the same weights and outputs."""
    from catface_keras.backbones.iresnet import IResNetBackbone, IResNetEmbedder

    reference = np.load(DATA / "embedder_outputs_before_inference_split.npz")
    model = load_model(DATA / "embedder_before_inference_split.keras", allow_embedder=True)
    assert type(model) is IResNetEmbedder and isinstance(model.backbone, IResNetBackbone)
    np.testing.assert_array_equal(
        model.predict(reference["images"], verbose=0)["embedding"], reference["embedding"]
    )
    with pytest.raises(ValueError, match="holds a IResNetEmbedder, not a CATFace stage-1"):
        load_model(DATA / "embedder_before_inference_split.keras")
