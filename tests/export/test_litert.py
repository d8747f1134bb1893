"""LiteRT export: float32 files match the Keras model; the dynamic-range file stays close."""

import numpy as np
import pytest
from format_references import float_faces, keras_reference, max_abs_differences, procedural_faces

pytest.importorskip("ai_edge_litert")

from catface_keras.models.inference_precision import cosine_agreement  # noqa: E402
from catface_keras.export.litert import export_litert, litert_bytes, run_litert  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def litert_files(format_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("litert")
    return {
        kind: export_litert(model, folder / f"{kind}.tflite")
        for kind, model in format_models.items()
    }


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("make_faces", [procedural_faces, float_faces], ids=["uint8", "float"])
def test_stage1_file_matches_the_keras_model(litert_files, format_models, batch, make_faces):
    faces = make_faces(batch, seed=batch)
    outputs = run_litert(litert_files["stage1"], faces)
    differences = max_abs_differences(keras_reference(format_models["stage1"], faces), outputs)
    assert max(differences.values()) <= TOLERANCE, differences
    assert outputs["embedding"].shape == (batch, 16)
    np.testing.assert_allclose(np.linalg.norm(outputs["embedding"], axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["stage2", "imported"])
def test_stage2_and_imported_backbone_files_match(litert_files, format_models, kind):
    faces = procedural_faces(3, seed=7)
    outputs = run_litert(litert_files[kind], faces)
    differences = max_abs_differences(keras_reference(format_models[kind], faces), outputs)
    assert max(differences.values()) <= TOLERANCE, differences


def test_dynamic_range_file_is_smaller_and_close_to_float32(
    litert_files, format_models, tmp_path
):
    quantised = export_litert(format_models["stage1"], tmp_path / "q.tflite", quantize="dynamic")
    assert quantised.stat().st_size < 0.5 * litert_files["stage1"].stat().st_size
    faces = procedural_faces(8, seed=3)
    agreement = cosine_agreement(
        run_litert(litert_files["stage1"], faces)["embedding"],
        run_litert(quantised, faces)["embedding"],
    )
    assert agreement["cosine_min"] >= 0.99, agreement


def test_unknown_quantisation_is_refused(format_models):
    with pytest.raises(ValueError, match=r"Received: quantize='int4'"):
        litert_bytes(format_models["stage1"], quantize="int4")


def test_missing_interpreter_is_named_with_the_pip_command(monkeypatch):
    import sys

    from catface_keras.export.litert import litert_interpreter_class

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ImportError, match=r'pip install "catface-keras\[litert\]"'):
        litert_interpreter_class()
