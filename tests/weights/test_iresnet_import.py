"""Importing published PyTorch iResNets: the same embeddings, and errors that name the key."""

import collections

import numpy as np
import pytest

from catface_keras.cli.main import main
from catface_keras.weights.iresnet_import import WeightImportError, import_iresnet
from catface_keras.weights.torch_checkpoint import UnsafeCheckpointError

torch = pytest.importorskip("torch")

from torch_iresnets import (  # noqa: E402  (needs torch)
    LAYERS,
    AdaFaceIR,
    InsightFaceIR,
    adaface_input,
    insightface_input,
    randomise,
    save_adaface_checkpoint,
    save_insightface_checkpoint,
)


@pytest.fixture(scope="module")
def faces():
    """Two 112x112 RGB faces: smooth colour gradients plus noise, so channels differ."""
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1, 112)[None, :, None, None]
    colours = rng.uniform(0, 255, (2, 1, 1, 3))
    images = colours * grid + (255 - colours) * grid.transpose(0, 2, 1, 3)
    images = images + rng.normal(0, 20, (2, 112, 112, 3))
    return np.clip(images, 0, 255).astype(np.uint8)


def torch_embedding(model, inputs):
    with torch.no_grad():
        return model(inputs).numpy()


def relative_difference(got, expected):
    return float(np.abs(got - expected).max() / np.abs(expected).max())


CASES = [
    # (arch, source, checkpoint format)
    ("ir_18", "adaface", "zip"),
    ("ir_18", "insightface", "legacy"),
    # IR-50 builds and runs the published network in PyTorch too: tens of seconds.
    pytest.param("ir_50", "adaface", "zip", marks=pytest.mark.slow),
    pytest.param("ir_50", "insightface", "zip", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("arch, source, file_format", CASES)
def test_imported_model_gives_the_published_models_embedding(tmp_path, faces, arch, source, file_format):
    """Tolerance: 1e-4 of the embedding's largest entry (float32 through 18-50 layers)."""
    if source == "adaface":
        reference = randomise(AdaFaceIR(LAYERS[arch]), seed=1)
        path = tmp_path / "adaface.ckpt"
        save_adaface_checkpoint(reference, path)
        expected = torch_embedding(reference, adaface_input(faces))  # BGR, as AdaFace takes
    else:
        reference = randomise(InsightFaceIR(LAYERS[arch]), seed=2)
        if arch == "ir_18":
            # Exercise the fold of a BN weight other than insightface's frozen 1.
            with torch.no_grad():
                reference.features.weight.uniform_(0.5, 1.5)
        path = tmp_path / "backbone.pth"
        save_insightface_checkpoint(reference, path, zip_format=file_format == "zip")
        expected = torch_embedding(reference, insightface_input(faces))  # RGB

    model, info = import_iresnet(path, source, arch)

    # RGB, always. An eager call: tracing a graph for two images costs more than it saves.
    got = model(faces.astype("float32"), training=False)["embedding"].numpy()
    assert relative_difference(got, expected) < 1e-4
    assert info["image_size"] == 112 and info["embedding_dim"] == 512
    assert model.backbone_spec["shortcut"] == {"adaface": "subsample", "insightface": "conv"}[source]
    if source == "adaface":
        assert info["ignored"] == ["head.kernel", "head.t"]
        # The colour order matters: fed BGR, the imported model no longer agrees.
        swapped = model(faces[..., ::-1].astype("float32"), training=False)["embedding"].numpy()
        assert relative_difference(swapped, expected) > 1e-2


@pytest.fixture(scope="module")
def insightface_ir18_state():
    return randomise(InsightFaceIR(LAYERS["ir_18"]), seed=3).state_dict()


def save_state(state, path):
    torch.save(state, path)
    return path


def test_unknown_key_is_named_with_its_shape(tmp_path, insightface_ir18_state):
    state = collections.OrderedDict(insightface_ir18_state)
    state["layer1.0.se.weight"] = torch.zeros(4, 64)
    path = save_state(state, tmp_path / "unknown.pth")
    with pytest.raises(WeightImportError, match=r"'layer1\.0\.se\.weight' \(4, 64\).*Check --from and --arch"):
        import_iresnet(path, "insightface", "ir_18")


def test_missing_key_is_named_with_the_shape_the_model_expects(tmp_path, insightface_ir18_state):
    state = collections.OrderedDict(insightface_ir18_state)
    del state["layer3.1.prelu.weight"]
    path = save_state(state, tmp_path / "missing.pth")
    with pytest.raises(WeightImportError, match=r"missing.*'layer3\.1\.prelu\.weight' \(256,\)"):
        import_iresnet(path, "insightface", "ir_18")


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path, insightface_ir18_state):
    state = collections.OrderedDict(insightface_ir18_state)
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    path = save_state(state, tmp_path / "mismatch.pth")
    with pytest.raises(
        WeightImportError,
        match=r"'layer2\.0\.conv1\.weight' has shape \(128, 64, 5, 5\) in the checkpoint but "
        r"an insightface ir_18 expects \(128, 64, 3, 3\)",
    ):
        import_iresnet(path, "insightface", "ir_18")


def test_wrong_arch_is_refused_naming_keys(tmp_path, insightface_ir18_state):
    path = save_state(insightface_ir18_state, tmp_path / "ir18.pth")
    with pytest.raises(WeightImportError, match=r"missing.*'layer1\.2\.bn1\.weight' \(64,\)"):
        import_iresnet(path, "insightface", "ir_34")


class TouchesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_checkpoint_whose_pickle_calls_a_function_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.input_layer.0.weight": torch.zeros(64, 3, 3, 3)},
                "callbacks": TouchesMarker(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        import_iresnet(path, "adaface", "ir_18")
    assert not marker.exists()


def test_cli_writes_the_model_and_keeps_an_existing_file(tmp_path, insightface_ir18_state, capsys):
    checkpoint = save_state(insightface_ir18_state, tmp_path / "backbone.pth")
    out = tmp_path / "models" / "backbone.keras"
    arguments = ["import-weights", "--from", "insightface", "--arch", "ir_18",
                 "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main(arguments) == 0
    assert "insightface ir_18, 112x112 faces -> 512-d embedding" in capsys.readouterr().out
    stamp = out.stat().st_mtime_ns
    assert main(arguments) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in out.parent.iterdir()) == ["backbone.keras"]  # no leftovers
    assert main([*arguments[:-1], str(tmp_path / "bad.h5")]) == 2
    assert "--out must end in .keras" in capsys.readouterr().err
