"""benchmarks/real_faces.py on a tiny CelebA-format folder (the real sample is not needed)."""

import importlib.util
import json
import pathlib

import keras
import numpy as np
import pytest
from data.face_writers import write_celeba

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "real_faces.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("real_faces", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


real_faces = _load_script()


def _tiny_celeba(root):
    # Train: 8 identities x 4 images; test: 6 identities x 7 images, every other one Male
    # and the first of each split also Bald.
    identities = [i // 4 + 1 for i in range(32)] + [i // 7 + 20 for i in range(42)]
    partitions = [0] * 32 + [2] * 42
    attributes = [
        ({"Male"} if identity % 2 else set()) | ({"Bald"} if identity in (1, 20) else set())
        for identity in identities
    ]
    write_celeba(root, identities, partitions, attributes)
    return identities, partitions


def test_quick_subset_keeps_whole_identities_within_the_budget(tmp_path):
    identities, partitions = _tiny_celeba(tmp_path / "celeba")
    root = real_faces.quick_subset(tmp_path / "celeba", tmp_path / "subset", 10, 15)
    kept = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines())
    partition = dict(
        line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines())
    # Train: identities 1 and 2 (8 images; a third would make 12 > 10); test: identities 20
    # and 21 (14 images; a third would make 21 > 15).
    assert sorted(set(kept.values())) == ["1", "2", "20", "21"]
    assert sum(value == "0" for value in partition.values()) == 8
    assert sum(value == "2" for value in partition.values()) == 14
    attribute_lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    assert attribute_lines[0] == "22" and len(attribute_lines) == 24
    assert sorted(path.name for path in (root / "img_align_celeba").iterdir()) == sorted(kept)


def test_validation_split_holds_out_train_identities_and_drops_the_test_ones(tmp_path):
    identities, _ = _tiny_celeba(tmp_path / "celeba")
    # One single-image train identity, which cannot form a genuine pair.
    write_celeba(tmp_path / "celeba", identities + [9], [0] * 32 + [2] * 42 + [0],
                 [set()] * 75)
    root = real_faces.validation_split(tmp_path / "celeba", tmp_path / "validation", 0.25)
    kept = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines())
    partition = dict(
        line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines())
    assert set(kept) == set(partition)
    # Only the 9 train identities are left; 25 % of the 8 with 2+ images (2) are held out,
    # whole, and never the single-image one.
    assert sorted(set(kept.values()), key=int) == [str(i) for i in range(1, 10)]
    held = {kept[name] for name, code in partition.items() if code == "2"}
    assert len(held) == 2 and "9" not in held
    for identity in held:
        assert {partition[name] for name, who in kept.items() if who == identity} == {"2"}
    attribute_lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    assert attribute_lines[0] == "33" and len(attribute_lines) == 35
    again = real_faces.validation_split(tmp_path / "celeba", tmp_path / "again", 0.25)
    assert (again / "list_eval_partition.txt").read_text() == (
        root / "list_eval_partition.txt").read_text()


def test_validation_fraction_must_be_a_fraction(tmp_path, capsys):
    with pytest.raises(SystemExit):
        real_faces.parse_args(["--celeba", str(tmp_path), "--validation", "1.5"])
    assert "--validation must be a fraction in (0, 1)" in capsys.readouterr().err


def test_pixel_floor_scores_identical_pairs_perfectly():
    from catface_keras.evaluation.protocol_data import PairList

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    # Genuine pairs: an image with itself; impostors: two different random images.
    first = np.arange(20)
    second = np.concatenate([np.arange(10), np.roll(np.arange(10, 20), 1)])
    same = np.arange(20) < 10
    pairs = PairList(first, second, same, None)
    floor = real_faces.pixel_floor(images, pairs, 32, None, 1, ("clean",))
    assert floor["clean"]["auc"] == 1.0 and floor["clean"]["accuracy"] == 1.0


def test_missing_celeba_folder_and_models_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        real_faces.parse_args(["--celeba", str(tmp_path / "absent"), "--out", str(tmp_path)])
    assert "--celeba" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        real_faces.parse_args(["--celeba", str(tmp_path), "--out", str(tmp_path / "o"),
                               "--evaluate-only"])
    assert "missing: stage1.keras, stage2.keras" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_writes_one_report(tmp_path):
    keras.utils.set_random_seed(0)
    _tiny_celeba(tmp_path / "celeba")
    out = tmp_path / "out"
    assert real_faces.main(["--celeba", str(tmp_path / "celeba"), "--out", str(out),
                            "--quick"]) == 0
    record = json.loads((out / "report.json").read_text())
    assert record["quick"] and record["data"]["test_identities"] == 6
    assert set(record["verification"]) == {"raw pixels", "stage1", "stage2"}
    for by_condition in record["verification"].values():
        assert set(by_condition) == {"clean", "degraded", "mixed"}
        for metrics in by_condition.values():
            assert 0.0 <= metrics["auc"] <= 1.0 and "tar_at_far_1e-2" in metrics
    # Test partition: 3 of 6 identities Male (21 of 42 images), 7 Bald.
    male = record["evaluation"]["stage2"]["attributes"]["clean"]["per_attribute"]["Male"]
    bald = record["evaluation"]["stage2"]["attributes"]["clean"]["per_attribute"]["Bald"]
    assert male["num_positive"] == 21 and male["majority_rate"] == 0.5
    assert bald["num_positive"] == 7 and bald["majority_rate"] == pytest.approx(35 / 42)
    report = (out / "report.md").read_text()
    assert "| raw pixels | mixed |" in report and "constant predictor acc." in report
    assert (out / "evaluation" / "results.json").exists()
    assert (out / "degradation_grid.png").stat().st_size > 0
    # A finished run is not replaced without --overwrite; --evaluate-only reuses its models.
    with pytest.raises(SystemExit):
        real_faces.parse_args(["--celeba", str(tmp_path / "celeba"), "--out", str(out)])
    stamp = (out / "run" / "stage2.keras").stat().st_mtime_ns
    assert real_faces.main(["--celeba", str(tmp_path / "celeba"), "--out", str(out), "--quick",
                            "--evaluate-only"]) == 0
    assert (out / "run" / "stage2.keras").stat().st_mtime_ns == stamp
    again = json.loads((out / "report.json").read_text())
    assert again["evaluate_only"] and again["verification"] == record["verification"]
