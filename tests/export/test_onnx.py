"""ONNX export: the file ONNX Runtime runs returns what the Keras model does."""

import numpy as np
import pytest
from format_references import float_faces, keras_reference, max_abs_differences, procedural_faces

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from catface_keras.export.onnx import ONNX_OPSET, export_onnx, run_onnx  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def onnx_files(format_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return {
        kind: export_onnx(model, folder / f"{kind}.onnx") for kind, model in format_models.items()
    }


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("make_faces", [procedural_faces, float_faces], ids=["uint8", "float"])
def test_stage1_file_matches_the_keras_model(onnx_files, format_models, batch, make_faces):
    faces = make_faces(batch, seed=batch)
    outputs = run_onnx(onnx_files["stage1"], faces)
    differences = max_abs_differences(keras_reference(format_models["stage1"], faces), outputs)
    assert max(differences.values()) <= TOLERANCE, differences
    assert outputs["embedding"].shape == (batch, 16)
    np.testing.assert_allclose(np.linalg.norm(outputs["embedding"], axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["stage2", "imported"])
def test_stage2_and_imported_backbone_files_match(onnx_files, format_models, kind):
    faces = procedural_faces(3, seed=7)
    outputs = run_onnx(onnx_files[kind], faces)
    reference = keras_reference(format_models[kind], faces)
    differences = max_abs_differences(reference, outputs)
    assert max(differences.values()) <= TOLERANCE, differences
    if kind == "imported":
        assert set(outputs) == {"embedding", "embedding_norm"}


def test_file_declares_opset_input_and_dynamic_batch(onnx_files, format_models):
    proto = onnx.load(str(onnx_files["stage1"]))
    onnx.checker.check_model(proto)
    assert {entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")} == {
        ONNX_OPSET
    }
    (images,) = proto.graph.input
    assert images.name == "images"
    assert images.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = images.type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value")  # any batch
    assert [dim.dim_value for dim in dims[1:]] == [112, 112, 3]
    assert {output.name for output in proto.graph.output} == {
        "embedding", "embedding_norm", *format_models["stage1"].attribute_names
    }


def test_runner_refuses_faces_of_another_size(onnx_files):
    with pytest.raises(ValueError, match=r"\(batch, 112, 112, 3\) RGB aligned faces. Received: "
                       r"faces.shape=\(2, 64, 64, 3\)"):
        run_onnx(onnx_files["stage1"], np.zeros((2, 64, 64, 3), np.uint8))


def test_missing_packages_are_named_with_the_pip_command(monkeypatch):
    import sys

    from catface_keras.export.onnx import onnx_modules

    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r'pip install "catface-keras\[onnx\]"'):
        onnx_modules()
