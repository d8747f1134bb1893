import argparse
import json

import numpy as np
import pytest

from catface_keras.cli import evaluate
from catface_keras.cli.main import SUBCOMMANDS

SMALL_SYNTHETIC = ["--data", "synthetic", "--identities", "6", "--images-per-identity", "4",
                   "--distractors", "3", "--pairs", "20"]


def run_evaluate(argv):
    # Only this sub-command, so that the test does not depend on the others.
    parser = argparse.ArgumentParser(prog="catface")
    evaluate.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *map(str, argv)])
    return args.run(args)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    from catface_keras.models.multibranch import MultiBranchModel

    model = MultiBranchModel(num_classes=8, backbone="ir_tiny", image_size=32, embedding_dim=16)
    path = tmp_path_factory.mktemp("model") / "m.keras"
    model.save(path)
    return path


def test_evaluate_is_a_catface_subcommand():
    assert SUBCOMMANDS["evaluate"] == "catface_keras.cli.evaluate"


def test_evaluate_synthetic_all_protocols_two_models(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "eval"
    other = tmp_path / "other.keras"
    other.write_bytes(tiny_model_path.read_bytes())
    argv = ["--model", tiny_model_path, "--model", other, "--out", out, *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocols"] == ["verification", "templates", "identification", "attributes"]
    assert [m["label"] for m in results["models"]] == ["m", "other"]
    assert results["data"]["num_images"] == 6 * 4 + 3 + 6 * 3
    for label in ("m", "other"):
        by_protocol = results["results"][label]
        for condition in ("clean", "distorted"):
            verification = by_protocol["verification"][condition]
            assert verification["num_genuine"] == verification["num_impostor"] == 20
            assert 0 <= verification["accuracy_mean"] <= 1 and 0 <= verification["auc"] <= 1
            assert verification["tar_at_far_1e-1"] is not None
            assert verification["tar_at_far_1e-4"] is None
            templates = by_protocol["templates"][condition]
            assert templates["num_templates"] == 12 and templates["num_genuine"] == 6
            identification = by_protocol["identification"][condition]
            assert identification["tinyface_style"]["num_distractors"] == 3
            assert set(identification["scface_style"]["rank_1_by_group"]) == {
                "distance_1", "distance_2", "distance_3"}
            assert set(by_protocol["attributes"][condition]["accuracy"]) == {
                "Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes"}
    # One model file copied: the same numbers.
    assert results["results"]["m"] == results["results"]["other"]
    # The distorted copy changes the images, hence the scores.
    clean, distorted = (results["results"]["m"]["verification"][c] for c in ("clean", "distorted"))
    assert clean["fold_thresholds"] != distorted["fold_thresholds"]
    report = (out / "report.md").read_text()
    assert "| m |" in report and "| other |" in report and "(dist.)" in report
    assert "## Identification: scface style" in report
    for name in ("roc_verification", "scores_verification", "roc_templates", "scores_templates"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out


def test_evaluate_refuses_to_overwrite(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.json").write_text("{}")
    argv = ["--model", tiny_model_path, "--out", out, "--protocol", "verification",
            *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (out / "results.json").read_text() == "{}"
    assert run_evaluate([*argv, "--overwrite"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocols"] == ["verification"] and not (out / "roc_templates.png").exists()


def test_evaluate_argument_errors(tiny_model_path, tmp_path, capsys):
    assert run_evaluate(["--model", tmp_path / "missing.keras", "--out", tmp_path / "o",
                         *SMALL_SYNTHETIC]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert run_evaluate(["--model", tiny_model_path, "--out", tmp_path / "o",
                         "--data", tmp_path / "nothing"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_verification_bin(tiny_model_path, tmp_path, monkeypatch):
    # The .bin reader is another module's; a stand-in returns 12 pairs of 40 px
    # faces, which the evaluation resizes to the model's 32 px.
    import sys
    import types

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(24, 40, 40, 3), dtype=np.uint8)
    issame = np.arange(12) % 2 == 0
    reader = types.ModuleType("catface_keras.data.insightface_bin")
    reader.read_verification_bin = lambda path: (images, issame)
    monkeypatch.setitem(sys.modules, "catface_keras.data.insightface_bin", reader)
    data = tmp_path / "lfw.bin"
    data.write_bytes(b"stand-in")
    out = tmp_path / "eval"
    assert run_evaluate(["--model", tiny_model_path, "--data", data, "--out", out]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocols"] == ["verification"]
    assert results["data"] == {"source": str(data), "num_images": 24, "num_pairs": 12}
    assert results["results"]["m"]["verification"]["clean"]["num_genuine"] == 6
    assert "the 40 px images are resized to its input, 32 px" in results["notes"][0]
    assert run_evaluate(["--model", tiny_model_path, "--data", data, "--out", tmp_path / "t",
                         "--protocol", "templates"]) == 2


def test_evaluate_identity_folder_with_distractors(tiny_model_path, tmp_path):
    import cv2

    rng = np.random.default_rng(1)
    root = tmp_path / "faces"
    for folder, count in (("alice", 3), ("bob", 3), ("carol", 2), ("_distractors", 2)):
        (root / folder).mkdir(parents=True)
        for index in range(count):
            image = rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)
            cv2.imwrite(str(root / folder / f"{index}.png"), image)
    (root / "bob" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "eval"
    argv = ["--model", tiny_model_path, "--data", root, "--out", out,
            "--protocol", "identification"]
    assert run_evaluate(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["skipped_images"] == 1
    assert results["data"]["num_identities"] == 3 and results["data"]["num_distractor_images"] == 2
    tinyface = results["results"]["m"]["identification"]["clean"]["tinyface_style"]
    # Gallery: one image per person plus the two distractors; probes: the rest.
    assert tinyface["num_gallery_images"] == 5 and tinyface["num_probes"] == 5


def test_argument_errors_come_back_without_loading_tensorflow(tmp_path):
    import subprocess
    import sys

    (tmp_path / "results.json").write_text("{}")
    script = (
        "import argparse, sys\n"
        "from catface_keras.cli import evaluate\n"
        "parser = argparse.ArgumentParser()\n"
        "evaluate.register(parser.add_subparsers())\n"
        f"args = parser.parse_args(['evaluate', '--model', {str(tmp_path / 'results.json')!r}, "
        f"'--data', 'synthetic', '--out', {str(tmp_path)!r}])\n"
        "code = args.run(args)\n"
        "sys.exit(10 + code if 'tensorflow' in sys.modules else code)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert completed.returncode == 2, completed.stderr
    assert "pass --overwrite" in completed.stderr
