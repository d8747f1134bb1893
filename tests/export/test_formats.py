"""`catface export --format`: several formats in one version, their errors, never overwriting."""

import json

import pytest

from catface_keras.cli.export import parse_formats
from catface_keras.cli.main import main

pytest.importorskip("tf2onnx")
pytest.importorskip("ai_edge_litert")


def test_formats_are_read_comma_separated_and_repeated():
    assert parse_formats(None) == ("savedmodel",)
    assert parse_formats(["litert,onnx"]) == ("onnx", "litert")
    assert parse_formats(["onnx", "savedmodel,onnx"]) == ("savedmodel", "onnx")
    with pytest.raises(ValueError, match=r"Received: --format=onnx,tflite"):
        parse_formats(["onnx,tflite"])


def test_onnx_and_litert_of_an_imported_backbone_in_one_version(
    format_model_paths, tmp_path, capsys
):
    base = tmp_path / "saved_models" / "backbone"
    argv = ["export", "--model", str(format_model_paths["imported"]), "--out", str(base),
            "--format", "onnx", "--format", "litert", "--litert-quantize", "dynamic"]
    assert main(argv) == 0
    version = base / "1"
    assert sorted(path.name for path in version.iterdir()) == [
        "model.onnx", "model.tflite", "model_card.json", "model_card.md", "model_dynamic.tflite"
    ]
    assert sorted(path.name for path in base.iterdir()) == ["1"]  # no scratch left
    printed = capsys.readouterr().out
    assert f"wrote {version}" in printed and "max abs difference" in printed
    card = json.loads((version / "model_card.json").read_text())
    assert card["exports"]["onnx"]["opset"] == 17
    assert max(card["exports"]["onnx"]["max_abs_difference"].values()) <= 1e-4
    assert max(card["exports"]["litert"]["max_abs_difference"].values()) <= 1e-4
    assert card["exports"]["litert_dynamic"]["embedding_cosine_to_float32"]["cosine_min"] >= 0.99

    # A second export is version 2; version 1 is never replaced without --overwrite.
    before = (version / "model.onnx").read_bytes()
    again = argv[:5] + ["--format", "litert"]
    assert main(again) == 0
    assert (base / "2" / "model.tflite").is_file()
    assert main([*argv, "--version", "1"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (version / "model.onnx").read_bytes() == before


def test_onnx_at_bfloat16_is_refused_with_the_way_out(format_model_paths, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["export", "--model", str(format_model_paths["imported"]), "--out", str(out),
            "--format", "savedmodel,onnx", "--precision", "bfloat16"]
    assert main(argv) == 2
    assert "export them with --precision float32, and the SavedModel alone" in (
        capsys.readouterr().err)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_stage1_in_all_formats_beside_the_savedmodel(keras_model_path, tmp_path):
    base = tmp_path / "catface"
    argv = ["export", "--model", str(keras_model_path), "--out", str(base),
            "--format", "savedmodel,onnx,litert"]
    assert main(argv) == 0
    names = {path.name for path in (base / "1").iterdir()}
    assert {"saved_model.pb", "assets.extra", "model.onnx", "model.tflite",
            "model_card.md"} <= names
    assert "model_dynamic.tflite" not in names


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "onnx", "--litert-quantize", "dynamic"],
         "--litert-quantize needs --format litert"),
        (["--format", "onnx,tflite"], "--format must name one or more of savedmodel, onnx"),
    ],
)
def test_argument_errors(keras_model_path, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["export", "--model", str(keras_model_path), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_extra_is_named_before_anything_loads(
    keras_model_path, tmp_path, capsys, monkeypatch
):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *args: None if name == "onnxruntime" else find_spec(name, *args),
    )
    out = tmp_path / "out"
    assert main(["export", "--model", str(keras_model_path), "--out", str(out),
                 "--format", "onnx"]) == 2
    error = capsys.readouterr().err
    assert "--format onnx needs onnxruntime" in error
    assert 'pip install "catface-keras[onnx]"' in error
    assert not out.exists()
