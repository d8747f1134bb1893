import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.backbones.iresnet import IRESNET_PRESETS, IResNetBackbone, resolve_backbone


def count_blocks(model):
    return len({layer.name.rsplit("_", 1)[0] for layer in model.layers if layer.name.endswith("_add")})


@pytest.mark.parametrize(
    "preset, blocks",
    [("ir_18", 8), ("ir_34", 16), ("ir_50", 24), ("ir_100", 49), ("ir_101", 49)],
)
def test_preset_block_counts(preset, blocks):
    assert sum(IRESNET_PRESETS[preset]["stage_blocks"]) == blocks


@pytest.mark.parametrize("image_size", [32, 48, 64])
def test_output_is_image_size_over_16(image_size):
    model = IResNetBackbone("ir_tiny", image_size=image_size)
    features = model(np.zeros((2, image_size, image_size, 3), "float32"))
    assert features.shape == (2, image_size // 16, image_size // 16, 64)
    assert count_blocks(model) == 4


def test_ir18_at_112_gives_7x7x512_and_expected_parameter_count():
    model = IResNetBackbone("ir_18")
    assert model.output.shape == (None, 7, 7, 512)
    assert count_blocks(model) == 8
    # Conv weights of insightface's IR-18 trunk (without the output layer).
    assert 11_000_000 < model.count_params() < 11_300_000


def test_normalises_pixels_in_graph():
    model = IResNetBackbone("ir_tiny", image_size=32)
    assert model.get_layer("pixel_normalization")(np.array([[0.0, 127.5, 255.0]])).numpy().tolist() == [
        [-1.0, 0.0, 1.0]
    ]


def test_predict_on_dataset_and_keras_round_trip(tmp_path):
    model = IResNetBackbone({"stage_blocks": [1, 2, 1, 1], "stage_widths": [8, 8, 16, 16]}, image_size=32)
    images = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2)
    predicted = model.predict(dataset, verbose=0)
    assert predicted.shape == (5, 2, 2, 16)
    path = tmp_path / "backbone.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(dataset, verbose=0), predicted, rtol=1e-5, atol=1e-5)


def test_bad_arguments_name_what_was_expected():
    with pytest.raises(ValueError, match="image_size=100"):
        IResNetBackbone("ir_tiny", image_size=100)
    with pytest.raises(ValueError, match="backbone='ir_7'"):
        resolve_backbone("ir_7")
    with pytest.raises(ValueError, match="stage_blocks"):
        resolve_backbone({"stage_blocks": [1, 1], "stage_widths": [8, 8, 8, 8]})
