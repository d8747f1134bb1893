import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from catface_keras.backbones.iresnet import (
    IRESNET_PRESETS,
    IResNetBackbone,
    IResNetEmbedder,
    backbone_spec,
    resolve_backbone,
)


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


DATA = pathlib.Path(__file__).parent / "data"


def numpy_conv3x3_stride2_pad1(x, kernel):
    """PyTorch's Conv2d(k=3, stride=2, padding=1) on NHWC `x` with an HWIO kernel."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out_size = (x.shape[1] - 1) // 2 + 1
    out = np.zeros((x.shape[0], out_size, out_size, kernel.shape[-1]))
    for i in range(out_size):
        for j in range(out_size):
            patch = padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, kernel)
    return out


def test_stride2_convs_pad_one_pixel_on_every_side_as_pytorch():
    model = IResNetBackbone("ir_tiny", image_size=32)
    conv = model.get_layer("stage2_block1_conv2")
    sub = keras.Model(model.get_layer("stage2_block1_conv2_pad").input, conv.output)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 32)).astype("float32")
    expected = numpy_conv3x3_stride2_pad1(x, conv.kernel.numpy())
    np.testing.assert_allclose(sub(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    # Keras' "same" samples other pixels at stride 2: the explicit padding matters.
    same = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)
    same.build(x.shape)
    same.set_weights([conv.kernel.numpy()])
    assert np.abs(same(x).numpy() - expected).max() > 0.1


def test_every_stride2_conv_is_padded_and_none_other():
    model = IResNetBackbone("ir_18")
    padded = sorted(layer.name for layer in model.layers if layer.name.endswith("_pad"))
    assert padded == [f"stage{s}_block1_conv2_pad" for s in range(1, 5)]


def test_shortcut_option_subsamples_or_convolves_the_first_block():
    adaface = IResNetBackbone("ir_tiny", image_size=32)
    insightface = IResNetBackbone({**IRESNET_PRESETS["ir_tiny"], "shortcut": "conv"}, image_size=32)
    names = {layer.name for layer in adaface.layers}
    assert "stage1_block1_subsample" in names and "stage1_block1_shortcut_conv" not in names
    names = {layer.name for layer in insightface.layers}
    assert "stage1_block1_shortcut_conv" in names and "stage1_block1_subsample" not in names
    # Widths that change take a conv either way.
    assert "stage2_block1_shortcut_conv" in {layer.name for layer in adaface.layers}


def test_backbone_spec_defaults_and_bad_options():
    assert backbone_spec("IR-18") == {
        "stage_blocks": [2, 2, 2, 2],
        "stage_widths": [64, 128, 256, 512],
        "shortcut": "subsample",
        "stride2_padding": "symmetric",
    }
    with pytest.raises(ValueError, match="shortcut='pool'"):
        backbone_spec({**IRESNET_PRESETS["ir_tiny"], "shortcut": "pool"})
    with pytest.raises(ValueError, match=r"Unknown keys \['depth'\]"):
        backbone_spec({**IRESNET_PRESETS["ir_tiny"], "depth": 3})


def test_models_saved_before_stride2_padding_load_and_compute_as_before():
    """Files written by the code before this option (Keras "same" at stride 2)."""
    import catface_keras.models  # noqa: F401  (registers MultiBranchModel)

    saved = np.load(DATA / "outputs_before_stride2_padding.npz")
    backbone = keras.models.load_model(DATA / "backbone_before_stride2_padding.keras")
    multibranch = keras.models.load_model(DATA / "multibranch_before_stride2_padding.keras")
    for model in (backbone, multibranch):
        assert model.backbone_spec["stride2_padding"] == "same"
        assert not [layer.name for layer in model.layers if layer.name.endswith("_pad")]
    np.testing.assert_allclose(backbone.predict(saved["images"], verbose=0), saved["features"], atol=1e-5)
    np.testing.assert_allclose(
        multibranch.predict(saved["images"], verbose=0)["embedding"], saved["embedding"], atol=1e-5
    )


def test_embedder_outputs_the_embedding_and_round_trips(tmp_path):
    model = IResNetEmbedder(
        {**IRESNET_PRESETS["ir_tiny"], "shortcut": "conv"}, image_size=32, embedding_dim=8
    )
    images = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    embedding = model.predict(images, verbose=0)["embedding"]
    assert embedding.shape == (3, 8) and embedding.dtype == np.float32
    model.save(tmp_path / "embedder.keras")
    restored = keras.models.load_model(tmp_path / "embedder.keras")
    assert restored.backbone_spec == model.backbone_spec
    np.testing.assert_allclose(restored.predict(images, verbose=0)["embedding"], embedding, atol=1e-5)
