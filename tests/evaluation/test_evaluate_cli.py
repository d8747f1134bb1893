import argparse
import json

import numpy as np
import pytest

from catface_keras.cli import evaluate
from catface_keras.cli.main import SUBCOMMANDS
from catface_keras.data.resizing import resize_faces

SMALL_SYNTHETIC = ["--data", "synthetic", "--identities", "6", "--images-per-identity", "4",
                   "--distractors", "3", "--pairs", "20"]


def run_evaluate(argv):
    # Only this sub-command, so that the test does not depend on the others.
    parser = argparse.ArgumentParser(prog="catface")
    evaluate.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *map(str, argv)])
    return args.run(args)


def test_evaluate_is_a_catface_subcommand():
    assert SUBCOMMANDS["evaluate"] == "catface_keras.cli.evaluate"


def test_evaluate_synthetic_all_protocols_two_models(tiny_training_path, tmp_path, capsys):
    out = tmp_path / "eval"
    # Two copies of one model file, with one file name: labelled by their folders.
    for run in ("run_a", "run_b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "m.keras").write_bytes(tiny_training_path.read_bytes())
    argv = ["--model", tmp_path / "run_a" / "m.keras", "--model", tmp_path / "run_b" / "m.keras",
            "--out", out, *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocols"] == ["verification", "templates", "identification", "attributes"]
    assert [m["label"] for m in results["models"]] == ["run_a/m", "run_b/m"]
    assert results["data"]["num_images"] == 6 * 4 + 3 + 6 * 3
    assert results["conditions"] == ["clean", "degraded", "mixed"]
    assert results["degradation"]["config"]["turbulence_fraction"] == 0.5
    assert "resized to the model's input size first, then degraded" in results["degradation"]["at"]
    for label in ("run_a/m", "run_b/m"):
        by_protocol = results["results"][label]
        assert set(by_protocol["attributes"]) == {"clean", "degraded"}  # per image: no mixed
        for condition in ("clean", "degraded", "mixed"):
            verification = by_protocol["verification"][condition]
            assert verification["num_genuine"] == verification["num_impostor"] == 20
            assert verification["threshold_search"] == "insightface"
            assert 0 <= verification["accuracy"] <= 1 and 0 <= verification["auc"] <= 1
            assert verification["tar_at_far_1e-1"] is not None
            assert verification["tar_at_far_1e-4"] is None
            templates = by_protocol["templates"][condition]
            assert templates["num_templates"] == 12 and templates["num_genuine"] == 6
            identification = by_protocol["identification"][condition]
            assert identification["tinyface_style"]["num_distractors"] == 3
            assert set(identification["scface_style"]["rank_1_by_group"]) == {
                "distance_1", "distance_2", "distance_3"}
            if condition != "mixed":
                assert set(by_protocol["attributes"][condition]["accuracy"]) == {
                    "Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes"}
    # The clean verification scores calibrate `catface verify`'s thresholds, beside each model.
    from catface_keras.evaluation.calibration import load_threshold

    assert results["calibration"]["run_a/m"] == str(tmp_path / "run_a" / "m.calibration.json")
    assert -1 <= load_threshold(tmp_path / "run_b" / "m.keras", 1e-1) <= 1
    # One model file copied: the same numbers.
    assert results["results"]["run_a/m"] == results["results"]["run_b/m"]
    # The degraded copy changes the images, hence the scores; mixed pairs differ from both.
    clean, degraded, mixed = (results["results"]["run_a/m"]["verification"][c]
                              for c in ("clean", "degraded", "mixed"))
    assert clean["auc"] != degraded["auc"] and mixed["auc"] not in (clean["auc"], degraded["auc"])
    report = (out / "report.md").read_text()
    assert "| run_a/m |" in report and "| run_b/m |" in report and "(degr.)" in report
    assert "(mixed)" in report and "insightface's thresholds" in report
    assert "## Identification: scface style" in report
    for name in ("roc_verification", "scores_verification", "roc_templates", "scores_templates",
                 "erc_verification_1", "erc_verification_2"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # Error-versus-reject curves on the degraded pairs: RI, feature norm and a random order.
    quality = results["quality"]["run_a/m"]
    assert quality["condition"] == "degraded"
    assert set(quality["curves"]) == {"recognizability", "feature_norm", "random"}
    for curve in quality["curves"].values():
        assert curve["reject_rates"][0] == 0 and len(curve["fnmr"]) == len(curve["reject_rates"])
        # Nothing rejected: every quality order gives the same FNMR.
        assert curve["fnmr"][0] == quality["curves"]["random"]["fnmr"][0]
        assert all(o <= f + 1e-12 for o, f in zip(curve["oracle_fnmr"], curve["fnmr"]))
    assert "wrote" in capsys.readouterr().out


def test_an_inference_file_has_no_recognizability_index(tiny_model_path, tmp_path):
    out = tmp_path / "eval"
    argv = ["--model", tiny_model_path, "--out", out, "--protocol", "verification", *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["quality"] == {} and not (out / "erc_verification.png").exists()
    assert any("no AdaFace class centres, so no recognizability index" in note
               for note in results["notes"])


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
    # The .bin reader is tested in tests/data; a stand-in returns 12 pairs of 40 px
    # faces, which the evaluation resizes to the model's 32 px.
    from catface_keras.data import insightface_bin

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(24, 40, 40, 3), dtype=np.uint8)
    issame = np.arange(12) % 2 == 0
    monkeypatch.setattr(insightface_bin, "read_verification_bin", lambda path: (images, issame))
    data = tmp_path / "lfw.bin"
    data.write_bytes(b"stand-in")
    out = tmp_path / "eval"
    assert run_evaluate(["--model", tiny_model_path, "--data", data, "--out", out]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocols"] == ["verification"]
    assert results["data"] == {"source": str(data), "num_images": 24, "num_pairs": 12}
    assert results["results"]["stage1"]["verification"]["clean"]["num_genuine"] == 6
    assert "the 40 px images are resized to its input, 32 px" in results["notes"][0]
    # Degraded at the model's input size: resize the .bin's images first, then degrade.
    from catface_keras.degrade import DegradationConfig
    from catface_keras.evaluation.protocols import degraded_copies

    resized = resize_faces(images, 32)
    lq = degraded_copies(resized, 1, DegradationConfig())
    assert lq.shape == (24, 32, 32, 3) and not np.array_equal(lq, resized)
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
    tinyface = results["results"]["stage1"]["identification"]["clean"]["tinyface_style"]
    # Gallery: one image per person plus the two distractors; probes: the rest.
    assert tinyface["num_gallery_images"] == 5 and tinyface["num_probes"] == 5


def test_argument_errors_come_back_without_loading_tensorflow(tmp_path):
    import subprocess
    import sys

    (tmp_path / "results.json").write_text("{}")
    script = (
        "import argparse, sys\n"
        "import catface_command\n"  # started as the `catface` command starts it
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


def test_models_with_one_file_name_get_labels_from_their_paths():
    from catface_keras.evaluation.run import model_labels

    assert model_labels(["runs/a/stage1.keras", "runs/b/stage1.keras"]) == ["a/stage1", "b/stage1"]
    labels = model_labels(["x/run/m.keras", "y/run/m.keras", "c.keras"])
    assert labels == ["x/run/m", "y/run/m", "c"]
    assert model_labels(["m.keras", "other.keras"]) == ["m", "other"]
    assert model_labels(["m.keras", "m.keras"]) == ["m", "m (2)"]


def test_evaluate_pairs_file_folds_and_exact_thresholds(tiny_model_path, tmp_path):
    import cv2

    rng = np.random.default_rng(2)
    root = tmp_path / "lfw"
    for name in ("Ann", "Bo", "Cy"):
        (root / name).mkdir(parents=True)
        for number in (1, 2):
            image = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
            cv2.imwrite(str(root / name / f"{name}_{number:04d}.jpg"), image)
    (root / "Cy" / "Cy_0002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    lines = ["Ann 1 2", "Ann 1 Bo 1", "Bo 1 2", "Bo 2 Ann 2", "Cy 1 2", "Cy 1 Ann 1"]
    (root / "pairs.txt").write_text("3\t1\n" + "\n".join(lines) + "\n")
    out = tmp_path / "eval"
    argv = ["--model", tiny_model_path, "--data", root, "--pairs-file", root / "pairs.txt",
            "--out", out, "--threshold-search", "exact", "--conditions", "clean"]
    assert run_evaluate(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocols"] == ["verification"]
    assert results["data"]["skipped_images"] == 1 and results["data"]["skipped_pairs"] == 1
    clean = results["results"]["stage1"]["verification"]["clean"]
    assert clean["num_pairs"] == 5 and clean["threshold_search"] == "exact"
    # The header's three folds (pairs 0-1, 2-3, 4-5 less the skipped one), not 10 folds.
    assert len(clean["fold_accuracies"]) == 3
    assert run_evaluate(["--model", tiny_model_path, "--data", "synthetic", "--out",
                         tmp_path / "o", "--pairs-file", root / "pairs.txt"]) == 2


@pytest.mark.slow
def test_train_and_evaluate_report_the_same_verification_numbers(tmp_path):
    """`catface train`'s held-out metrics = `catface evaluate` on those faces, same config."""
    import cv2
    import yaml

    from catface_keras.cli.main import main
    from catface_keras.data.synthetic import make_synthetic_faces

    def write_folder(root, first_identity, people, per_person):
        faces = make_synthetic_faces(range(first_identity, first_identity + people), per_person,
                                     32, seed=0, relabel=False)
        for index, (image, identity) in enumerate(zip(faces.images, faces.identities)):
            path = root / f"p{identity}" / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    write_folder(tmp_path / "train", 0, 4, 4)
    write_folder(tmp_path / "heldout", 100, 10, 5)  # 100 genuine pairs, as the config asks
    config = {
        "data": {"source": "image_folder", "path": str(tmp_path / "train"), "image_size": 32,
                 "heldout_path": str(tmp_path / "heldout")},
        "model": {"backbone": "ir_tiny", "embedding_dim": 16},
        "train": {"epochs": 1, "batch_size": 8, "distribution": "none"},
        "evaluation": {"num_pairs": 100, "batch_size": 16, "seed": 5},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--out", str(run)]) == 0
    trained = json.loads((run / "metrics.json").read_text())["stage1"]["verification"]
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run / "stage1.keras"), "--data",
                 str(tmp_path / "heldout"), "--config", str(run / "config.yaml"),
                 "--protocol", "verification", "--out", str(out)]) == 0
    evaluated = json.loads((out / "results.json").read_text())["results"]["stage1"]["verification"]
    assert set(trained) == set(evaluated) == {"clean", "degraded", "mixed"}
    for condition in trained:
        for key in ("accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e-1",
                    "fold_thresholds", "num_genuine"):
            assert trained[condition][key] == evaluated[condition][key], (condition, key)


def test_evaluate_at_bfloat16_records_the_cosine_to_float32(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--model", tiny_model_path, "--out", out, "--protocol", "verification",
            "--conditions", "clean", "--precision", "bfloat16", *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    printed = capsys.readouterr().out
    assert f"{tiny_model_path} in bfloat16: embedding cosine to float32 on the first" in printed
    results = json.loads((out / "results.json").read_text())
    precision = results["models"][0]["precision"]
    assert precision["precision"] == "bfloat16" and precision["dtype_policy"] == "mixed_bfloat16"
    agreement = precision["cosine_to_float32"]
    # The first batch: 6 x 4 + 3 + 6 x 3 = 45 images, fewer than the batch size of 64.
    assert agreement["images"] == 45
    assert 0.999 <= agreement["cosine_min"] <= agreement["cosine_mean"] < 1
    assert "computed in bfloat16, embedding cosine to float32 min 0.99" in (
        out / "report.md").read_text()


def test_evaluate_defaults_to_float32(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--model", tiny_model_path, "--out", out, "--protocol", "verification",
            "--conditions", "clean", *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    assert "cosine to float32" not in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["models"][0]["precision"] == {"precision": "float32", "dtype_policy": "float32"}


def test_evaluate_an_imported_backbone_without_attributes(imported_backbone_path, tmp_path):
    out = tmp_path / "eval"
    argv = ["--model", imported_backbone_path, "--out", out, "--conditions", "clean",
            *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["models"][0]["attribute_names"] == []
    by_protocol = results["results"]["backbone"]
    assert 0 <= by_protocol["verification"]["clean"]["accuracy"] <= 1
    assert by_protocol["attributes"]["clean"]["accuracy"] == {}
    assert by_protocol["attributes"]["clean"]["mean"] is None
    assert ("attributes: the model has no attribute outputs (an imported iResNet embeds faces "
            "only): no attribute accuracy") in results["notes"]
    assert (out / "report.md").is_file()


def test_calibration_split_calibrates_on_a_share_and_checks_on_the_rest(tiny_model_path,
                                                                        tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(tiny_model_path.read_bytes())
    argv = ["--model", model, "--out", tmp_path / "eval", "--protocol", "verification",
            "--conditions", "clean", "--calibration-split", "0.5", *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    from catface_keras.evaluation.calibration import calibration_path, describe_calibration

    content = json.loads(calibration_path(model).read_text())
    # 20 genuine and 20 impostor pairs, half of each for calibration: 10 impostors
    # measure FAR 1e-1 only.
    assert content["calibrated_on"] == "split"
    assert content["split"] == {"fraction": 0.5, "seed": 1, "calibration_pairs": 20,
                                "held_out_pairs": 20}
    assert "(10 genuine, 10 impostor pairs, clean)" in content["source"]
    assert list(content["thresholds"]) == list(content["held_out"]) == ["1e-1"]
    rates = content["held_out"]["1e-1"]
    # Rates over 10 held-out pairs of each kind.
    assert rates["far"] * 10 == pytest.approx(round(rates["far"] * 10))
    assert rates["tar"] * 10 == pytest.approx(round(rates["tar"] * 10))
    assert "held-out pairs FAR" in describe_calibration(model, 0.1)


def test_calibration_split_out_of_range_is_refused(tiny_model_path, tmp_path, capsys):
    argv = ["--model", tiny_model_path, "--out", tmp_path / "eval", "--calibration-split", "1",
            *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 2
    assert "--calibration-split must be in (0, 1), got 1.0" in capsys.readouterr().err


def test_a_split_too_small_to_hold_both_kinds_is_a_note(tiny_model_path, tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(tiny_model_path.read_bytes())
    argv = ["--model", model, "--out", tmp_path / "eval", "--protocol", "verification",
            "--conditions", "clean", "--calibration-split", "0.01", *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["calibration"] == {"m": None}
    assert any("no calibration file written: A calibration split of 0.01 leaves a part "
               "without genuine pairs" in note for note in results["notes"])
    assert not (tmp_path / "m.calibration.json").exists()


def _pair_list_folder(root, people=6, seed=3):
    """`people` folders of two random 40x40 faces and a 'name n name n' pair list: each
    person's genuine pair and two impostor pairs each (6 genuine, 12 impostor)."""
    import cv2

    rng = np.random.default_rng(seed)
    names = [f"P{index}" for index in range(people)]
    for name in names:
        (root / name).mkdir(parents=True)
        for number in (1, 2):
            image = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
            cv2.imwrite(str(root / name / f"{name}_{number:04d}.jpg"), image)
    lines = [f"{name} 1 2" for name in names]
    lines += [f"{name} {number} {names[(index + 1) % people]} {number}"
              for index, name in enumerate(names) for number in (1, 2)]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root / "pairs.txt"


def test_calibration_pairs_fit_the_thresholds_and_check_them_on_the_evaluated(
        tiny_model_path, tmp_path):
    from catface_keras.evaluation.calibration import calibration_path, describe_calibration

    pairs = _pair_list_folder(tmp_path / "other_people")
    model = tmp_path / "m.keras"
    model.write_bytes(tiny_model_path.read_bytes())
    argv = ["--model", model, "--out", tmp_path / "eval", "--protocol", "verification",
            "--conditions", "clean", "--calibration-pairs", pairs, *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 0
    content = json.loads(calibration_path(model).read_text())
    assert content["calibrated_on"] == "pairs_file"
    assert content["source"].endswith("pairs.txt (6 genuine, 12 impostor pairs, clean)")
    assert content["checked_on"] == {
        "source": "synthetic (20 genuine, 20 impostor pairs, clean)", "pairs": 40}
    # 12 impostors measure FAR 1e-1 only; the rates are over the 20 + 20 evaluated pairs.
    assert list(content["thresholds"]) == list(content["held_out"]) == ["1e-1"]
    rates = content["held_out"]["1e-1"]
    assert rates["far"] * 20 == pytest.approx(round(rates["far"] * 20))
    assert rates["tar"] * 20 == pytest.approx(round(rates["tar"] * 20))
    text = describe_calibration(model, 0.1)
    assert "calibrated on the separate pairs of" in text
    assert "on the 40 evaluated pairs of synthetic" in text
    # The threshold is the one that evaluating the pair file itself calibrates.
    alone = tmp_path / "alone.keras"
    alone.write_bytes(tiny_model_path.read_bytes())
    assert run_evaluate(["--model", alone, "--data", pairs.parent, "--pairs-file", pairs,
                         "--out", tmp_path / "alone", "--conditions", "clean"]) == 0
    expected = json.loads(calibration_path(alone).read_text())["thresholds"]
    assert content["thresholds"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--calibration-pairs", "PAIRS", "--calibration-split", "0.3"],
         "--calibration-pairs and --calibration-split exclude each other"),
        (["--calibration-root", "ROOT"], "--calibration-root goes with --calibration-pairs"),
        (["--calibration-pairs", "ROOT/absent.txt"], "absent.txt is not a file"),
        (["--calibration-pairs", "PAIRS", "--calibration-root", "ROOT/absent"],
         "--calibration-root must be the folder the pair list's paths are relative to"),
    ],
    ids=["with-split", "root-alone", "missing-file", "missing-root"],
)
def test_calibration_pairs_arguments_are_checked(tiny_model_path, tmp_path, capsys, extra,
                                                 message):
    pairs = _pair_list_folder(tmp_path / "other_people")
    extra = [value.replace("PAIRS", str(pairs)).replace("ROOT", str(pairs.parent))
             for value in extra]
    argv = ["--model", tiny_model_path, "--out", tmp_path / "eval", *extra, *SMALL_SYNTHETIC]
    assert run_evaluate(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()
