"""`catface benchmark` end to end on tiny copies of the official layouts."""

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from evaluation.official.benchmark_layouts import write_bin, write_scface, write_tinyface
from evaluation.official.ijb_layout import write_ijb

from catface_keras.cli import benchmark
from catface_keras.cli.main import SUBCOMMANDS
from catface_keras.evaluation import features as features_module
from catface_keras.evaluation.official import ijb, tinyface
from catface_keras.evaluation.official import run as official_run

ROOT = pathlib.Path(__file__).resolve().parents[3]


def run_benchmark(argv):
    parser = argparse.ArgumentParser(prog="catface")
    benchmark.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["benchmark", *map(str, argv)])
    return args.run(args)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "benchmarks"
    root.mkdir()
    write_bin(root / "lfw.bin", num_pairs=20)
    write_tinyface(root, distractors=3)
    write_scface(root)
    return root


@pytest.fixture
def count_embedded(monkeypatch):
    """Counts the images `extract_features` embeds, by the size of each call."""
    counted = []
    original = features_module.extract_features

    def counting(model, images, *args, **kwargs):
        counted.append(len(images))
        return original(model, images, *args, **kwargs)

    monkeypatch.setattr(features_module, "extract_features", counting)
    return counted


def insightface_accuracy(embeddings, same):
    """insightface's calculate_roc, written from its description: 10 contiguous folds; on
    each, the first threshold of arange(0, 4, 0.01) best on the other nine."""
    distances = np.sum((embeddings[0::2] - embeddings[1::2]) ** 2, axis=1)
    thresholds = np.arange(0, 4, 0.01)
    accuracies = []
    for test in np.array_split(np.arange(len(same)), 10):
        train = np.setdiff1d(np.arange(len(same)), test)
        train_accuracy = [np.mean((distances[train] < t) == same[train]) for t in thresholds]
        best = thresholds[int(np.argmax(train_accuracy))]
        accuracies.append(np.mean((distances[test] < best) == same[test]))
    return float(np.mean(accuracies))


def adaface_rank_k(features, protocol, k):
    """AdaFace's DIR_FAR at FAR 1: sort the gallery by inner product, mate in the top k?"""
    probe, gallery, labels = protocol["probe"], protocol["gallery"], protocol["labels"]
    scores = features[probe] @ features[gallery].T
    hits = []
    for row, label in zip(scores, labels[probe]):
        top = np.argsort(row)[::-1][:k]
        hits.append(np.any(labels[gallery][top] == label))
    return float(np.mean(hits))


def test_benchmark_is_a_catface_subcommand():
    assert SUBCOMMANDS["benchmark"] == "catface_keras.cli.benchmark"


def test_benchmark_writes_the_table_and_each_report(tiny_model_path, root, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_benchmark(["--model", tiny_model_path, "--root", root, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "embedding lfw: 100% (40/40 images" in printed
    assert "lfw, tinyface, scface for 1 model(s)" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["benchmarks"] == ["lfw", "tinyface", "scface"]
    model = results["models"][0]
    cells = model["cells"]
    assert model["label"] == "stage1"
    assert cells["cfp_fp"] is None and cells["ijbc"] is None

    # LFW: the 10-fold accuracy recomputed from the saved embeddings by hand.
    lfw = np.load(out / "stage1" / "features" / "lfw.npy")
    same = np.arange(20) % 2 == 0
    assert cells["lfw"] == pytest.approx(insightface_accuracy(lfw, same), abs=1e-12)
    # TinyFace: AdaFace's ranking on the saved embeddings.
    saved = np.load(out / "stage1" / "features" / "tinyface.npy")
    protocol = tinyface.load_protocol(root)
    assert saved.shape == (4 + 4 + 3, 16)
    for k in (1, 5):
        assert cells[f"tinyface_r{k}"] == pytest.approx(adaface_rank_k(saved, protocol, k))
    assert model["results"]["tinyface"]["tinyface_r20"] == 1.0  # 7 gallery images
    # SCface: the best mugshot of each probe, per distance (subjects 1-3, cam1 and cam2).
    scface = np.load(out / "stage1" / "features" / "scface.npy")
    # Probes in file order: distance folders, camera folders, subjects.
    mugshots, probes = scface[:3], scface[3:].reshape(3, 2, 3, 16)
    for distance in (1, 2, 3):
        best = np.argmax(probes[distance - 1] @ mugshots.T, axis=-1)  # (camera, subject)
        expected = np.mean(best == np.arange(3)[None, :])
        assert cells[f"scface_d{distance}"] == pytest.approx(expected)

    table = (out / "table.md").read_text().splitlines()
    assert table[0].startswith("| Model | LFW | CFP-FP |")
    row = table[2].split(" | ")
    assert row[0] == "| stage1" and row[1] == f"{100 * cells['lfw']:.2f}" and row[2] == ""
    assert any("SCFace subjects: all 3 subjects" in line for line in table)
    with open(out / "table.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["model"] == "stage1" and rows[0]["ijbb"] == ""
    assert rows[0]["tinyface_r1"] == f"{100 * cells['tinyface_r1']:.2f}"
    for name, files in (("lfw", {"report.md", "results.json", "roc.png", "scores.png"}),
                        ("tinyface", {"report.md", "results.json", "cmc.csv", "cmc.png"}),
                        ("scface", {"report.md", "results.json", "cmc.csv", "cmc.png"})):
        assert {path.name for path in (out / "stage1" / name).iterdir()} == files
    assert "TAR" in (out / "stage1" / "lfw" / "report.md").read_text()

    # A finished run is not replaced without --overwrite.
    assert run_benchmark(["--model", tiny_model_path, "--root", root, "--out", out]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_an_interrupted_run_resumes_without_embedding_again(tiny_model_path, root, tmp_path,
                                                            count_embedded):
    out = tmp_path / "out"
    argv = ["--model", tiny_model_path, "--root", root, "--out", out]
    assert run_benchmark(argv + ["--only", "lfw"]) == 0
    first = json.loads((out / "results.json").read_text())["models"][0]["cells"]
    assert count_embedded == [40]
    # As if killed after LFW's features: they are on disk, results.json is not.
    (out / "results.json").unlink()
    count_embedded.clear()
    assert run_benchmark(argv) == 0
    assert count_embedded == [4 + 4 + 3, 3 + 18]  # only TinyFace's and SCface's images
    cells = json.loads((out / "results.json").read_text())["models"][0]["cells"]
    assert cells["lfw"] == first["lfw"]


def test_scface_test_subjects_and_two_models(tiny_model_path, root, tmp_path):
    subjects = tmp_path / "test_subjects.txt"
    subjects.write_text("002\n003\n")
    copy = tmp_path / "other" / "stage1.keras"
    copy.parent.mkdir()
    copy.write_bytes(tiny_model_path.read_bytes())
    out = tmp_path / "out"
    assert run_benchmark(["--model", tiny_model_path, "--model", copy, "--root", root,
                          "--out", out, "--only", "scface",
                          "--scface-test-subjects", subjects]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["models"]) == 2
    first, second = (model["cells"] for model in results["models"])
    assert first == second  # one network, two files
    report = json.loads((out / results["models"][0]["reports"]["scface"] / "results.json")
                        .read_text())
    assert report["test_subjects"] == [2, 3] and report["probes"] == {"d1": 4, "d2": 4, "d3": 4}
    assert "the 2 test subjects of" in (out / "table.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--only", "lfw,mnist"], "--only must list some of lfw"),
    (["--only", "cfp_fp"], "cfp_fp not found in"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_argument_errors(tiny_model_path, root, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert run_benchmark(["--model", tiny_model_path, "--root", root, "--out", out,
                          *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_root_without_benchmarks_or_a_missing_model(tiny_model_path, tmp_path, capsys):
    assert run_benchmark(["--model", tiny_model_path, "--root", tmp_path, "--out",
                          tmp_path / "out"]) == 2
    assert "holds none of the benchmark layouts" in capsys.readouterr().err
    assert run_benchmark(["--model", tmp_path / "no.keras", "--root", tmp_path, "--out",
                          tmp_path / "out"]) == 2
    assert f"--model {tmp_path / 'no.keras'} does not exist" in capsys.readouterr().err


def test_a_missing_benchmark_module_is_skipped(monkeypatch, root):
    monkeypatch.setattr(official_run, "BENCHMARK_MODULES", official_run.BENCHMARK_MODULES + (
        "catface_keras.evaluation.official.not_written_yet",))
    assert [name for name, _ in official_run.find_benchmarks(root)] == [
        "lfw", "tinyface", "scface"]


def test_malformed_files_stop_before_tensorflow_and_name_the_file(tmp_path):
    root = tmp_path / "benchmarks"
    root.mkdir()
    write_tinyface(root)
    mat = root / "tinyface" / "Testing_Set" / "gallery_match_img_ID_pairs.mat"
    mat.write_bytes(b"garbage")
    model = tmp_path / "m.keras"
    model.write_bytes(b"never loaded")
    # Started as the `catface` command starts it (`catface_command`).
    probe = ("import sys\nfrom catface_command import main\ncode = main(sys.argv[1:])\n"
             "print('tensorflow loaded:', 'tensorflow' in sys.modules)\nsys.exit(code)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", probe, "benchmark", "--model", str(model), "--root", str(root),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"{mat} is not a readable MATLAB .mat file" in result.stderr
    assert "tensorflow loaded: False" in result.stdout
    assert not (tmp_path / "out").exists()


def test_a_damaged_bin_stops_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "lfw.bin").write_bytes(b"\x80\x04garbage")
    model = tmp_path / "m.keras"
    model.write_bytes(b"never loaded")
    assert run_benchmark(["--model", model, "--root", tmp_path, "--out", tmp_path / "out"]) == 2
    assert f"{tmp_path / 'lfw.bin'} is not a readable verification pickle" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_ijb_runs_through_the_benchmark_with_the_options_it_names(tiny_model_path, root,
                                                                 tmp_path, monkeypatch):
    write_ijb(root, "ijbc")
    received = {}
    original = ijb.run

    def recording_run(name, root, extractor, out_dir, flip=True, norm_score=True,
                      detector_score=True, batch_size=None):
        received.update(name=name, flip=flip, norm_score=norm_score,
                        detector_score=detector_score, batch_size=batch_size)
        return original(name, root, extractor, out_dir, flip=flip, norm_score=norm_score,
                        detector_score=detector_score, batch_size=batch_size)

    monkeypatch.setattr(ijb, "run", recording_run)
    out = tmp_path / "out"
    assert run_benchmark(["--model", tiny_model_path, "--root", root, "--out", out,
                          "--only", "ijbc", "--no-flip", "--no-norm-score", "--batch-size",
                          "7"]) == 0
    assert received == {"name": "ijbc", "flip": False, "norm_score": False,
                        "detector_score": True, "batch_size": 7}
    saved = np.load(out / "stage1" / "features" / "ijbc-noflip-unnormalized.npy")
    assert saved.shape[0] == 32 and not np.allclose(np.linalg.norm(saved, axis=1), 1)
    report = json.loads((out / "stage1" / "ijbc" / "report.json").read_text())
    results = json.loads((out / "results.json").read_text())
    cell = results["models"][0]["cells"]["ijbc"]
    assert cell == results["models"][0]["results"]["ijbc"]["ijbc"]
    assert 0 <= cell <= 1
    assert np.load(out / "stage1" / "ijbc" / "scores.npy").shape == (report["pairs"],)
    table = (out / "table.md").read_text()
    assert f"|  |  |  |  |  |  | {100 * cell:.2f} |" in table and "norm score off" in table
    assert "without the flip test" in table


def test_bfloat16_embeds_apart_and_records_its_cosine_to_float32(tiny_model_path, tmp_path,
                                                                 capsys):
    root = tmp_path / "benchmarks"
    root.mkdir()
    write_bin(root / "lfw.bin", num_pairs=20)
    out = tmp_path / "out"
    assert run_benchmark(["--model", tiny_model_path, "--root", root, "--out", out]) == 0
    float32 = np.load(out / "stage1" / "features" / "lfw.npy")
    assert run_benchmark(["--model", tiny_model_path, "--root", root, "--out", out,
                          "--overwrite", "--precision", "bfloat16"]) == 0
    assert "bfloat16: embedding cosine to float32 on the first 40 image(s)" in (
        capsys.readouterr().out)
    bfloat16 = np.load(out / "stage1" / "features" / "lfw.npy")
    # The cached float32 features were not reused: the record names the precision.
    assert not np.array_equal(float32, bfloat16)
    cosines = np.sum(float32 * bfloat16, axis=1)
    assert cosines.min() > 0.99
    record = json.loads((out / "results.json").read_text())["models"][0]["precision"]
    assert record["precision"] == "bfloat16" and record["dtype_policy"] == "mixed_bfloat16"
    agreement = record["cosine_to_float32"]
    assert agreement["images"] == 40 and 0.99 < agreement["cosine_min"] <= 1
