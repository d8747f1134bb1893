"""`catface ablate`: rows, resumption, report files, intervals, metric keys."""

import io
import json
import math
import pathlib

import numpy as np
import pytest

from catface_keras.ablation import runner as runner_module
from catface_keras.ablation.metrics import verification_metric
from catface_keras.ablation.report import METRIC_TITLES
from catface_keras.ablation.stats import paired_interval, summarize, t_quantile_975
from catface_keras.ablation.tables import TABLES
from catface_keras.cli import main as cli_main
from catface_keras import trainer


def test_paired_interval_of_identical_rows_is_zero_and_t_matches_numpy():
    values = {0: 0.8, 1: 0.7, 2: 0.9}
    assert paired_interval(values, dict(values)) == {"diff": 0.0, "low": 0.0, "high": 0.0, "n": 3,
                                                     "std": 0.0}
    shifted = {0: 0.85, 1: 0.70, 2: 0.98}
    diffs = np.array([0.05, 0.0, 0.08])
    half = 4.302653 * diffs.std(ddof=1) / np.sqrt(3)  # t_{0.975, 2}
    result = paired_interval(shifted, values)
    assert result["low"] == pytest.approx(diffs.mean() - half)
    assert result["high"] == pytest.approx(diffs.mean() + half)
    assert math.isnan(paired_interval({0: 1.0}, {0: 0.5})["low"])  # one seed: no interval
    assert t_quantile_975(100) == pytest.approx(1.98397, abs=1e-4)
    assert summarize([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(np.sqrt(2)), "n": 2}


def test_seeds_and_pairs_for_an_interval_width_by_hand():
    from catface_keras.ablation.stats import pairs_for_width, seeds_for_width

    # std 0.02: n = 7 gives 2 * 2.446912 * 0.02 / sqrt(7) = 0.0370 > 0.02; the first n with
    # 2 t_{n-1} 0.02 / sqrt(n) <= 0.02 is 18 (2 * 2.109816 / sqrt(18) = 0.99458).
    assert seeds_for_width(0.02, 0.02) == 18
    assert 2 * 2.119905 / np.sqrt(17) > 1.0  # n = 17 is not enough
    assert seeds_for_width(0.0, 0.02) == 2 and seeds_for_width(math.nan) is None
    # TAR near 0.5: (2 * 1.959964 / 0.02)^2 * 0.25 = 9603.6 -> 9604 genuine pairs.
    assert pairs_for_width(0.5, 0.02) == 9604
    assert pairs_for_width(0.9, 0.02) == 3458
    with pytest.raises(ValueError, match="Received: rate=1.5"):
        pairs_for_width(1.5)


def test_metric_accessor_reads_new_and_legacy_keys():
    new = {"verification": {"degraded": {"tar_at_far_1e-2": 0.5, "auc": 0.9}}}
    legacy = {"verification": {"lq_lq": {"tar_at_far_1e-2": 0.4}}}
    assert verification_metric(new, "degraded", "auc") == 0.9
    assert verification_metric(legacy, "degraded", "tar_at_far_1e-2") == 0.4
    assert math.isnan(verification_metric(legacy, "mixed", "auc"))


class FakeTrainer:
    """Stands in for run_stage1/run_stage2: writes the files they write, fast."""

    def __init__(self):
        self.calls = []

    def _metrics(self, config, out_dir):
        # Deterministic in the variant and seed, so rows and seeds differ.
        key = json.dumps([str(out_dir.parent.name), config.train.seed])
        value = (sum(map(ord, key)) % 97) / 100
        conditions = {c: {"tar_at_far_1e-2": value, "accuracy": 0.5 + value / 2}
                      for c in ("hq_hq", "lq_lq", "hq_lq")}
        return {"verification": conditions}

    def _finish(self, out_dir, model_file, stage, metrics):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / model_file).write_text("model")
        path = out_dir / "metrics.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved[stage] = metrics
        path.write_text(json.dumps(saved))
        return None, saved

    def run_stage1(self, config, out_dir, verbose=0, callbacks=()):
        self.calls.append(("stage1", str(out_dir), config.loss.teacher))
        return self._finish(out_dir, "stage1.keras", "stage1", self._metrics(config, out_dir))

    def run_stage2(self, config, out_dir, init=None, verbose=0, callbacks=()):
        assert init.exists()
        self.calls.append(("stage2", str(out_dir), config.stage2.fusion))
        return self._finish(out_dir, "stage2.keras", "stage2", self._metrics(config, out_dir))


@pytest.mark.parametrize("table", ["fusion", "distillation"])
def test_ablate_cli_writes_every_row_and_does_not_retrain(table, tmp_path, monkeypatch, capsys):
    fake = FakeTrainer()
    monkeypatch.setattr(trainer, "run_stage1", fake.run_stage1)
    monkeypatch.setattr(trainer, "run_stage2", fake.run_stage2)
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  seed: 5\n")
    out = tmp_path / "out"
    argv = ["ablate", "--table", table, "--config", str(config), "--seeds", "2",
            "--out", str(out), "--budget", "tiny"]
    assert cli_main.main(argv) == 0
    rows = TABLES[table].rows
    summary = json.loads((out / "results.json").read_text())
    assert [r["row"] for r in summary["rows"]] == [row.name for row in rows]
    assert all(r["seeds"] == [0, 1] for r in summary["rows"])
    for name in ("table.md", "table.csv", "plot.png"):
        assert (out / name).stat().st_size > 0
    markdown = (out / "table.md").read_text()
    assert all(f"| {row.name} | 2 |" in markdown for row in rows)
    stage1_runs = [c for c in fake.calls if c[0] == "stage1"]
    if table == "fusion":
        # One stage-1 model per seed, shared by every fusion row.
        assert len(stage1_runs) == 2 and len(fake.calls) == 2 + (len(rows) - 1) * 2
    else:
        # Six stage-1 rows plus an A-SKD teacher per seed; the student names it.
        assert len(stage1_runs) == 2 * 7
        students = [c for c in stage1_runs if c[2]]
        assert len(students) == 2 and all("teacher" in c[2] for c in students)
    reference = next(r for r in summary["rows"] if r["row"] == summary["reference"])
    interval = reference["metrics"]["degraded/tar_at_far_1e-2"]["vs_reference"]
    assert (interval["low"], interval["high"]) == (0.0, 0.0)
    output = capsys.readouterr().out
    assert f"row {len(rows)}/{len(rows)}" in output and "finished in" in output

    calls = len(fake.calls)
    assert cli_main.main([*argv, "--report-only"]) == 0
    assert len(fake.calls) == calls
    assert cli_main.main(argv) == 0
    assert len(fake.calls) == calls  # every row and seed was kept
    assert "done before, kept" in capsys.readouterr().out


def test_a_failed_row_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    fake = FakeTrainer()

    def failing_stage2(config, out_dir, init=None, verbose=0, callbacks=()):
        if config.stage2.fusion == "se":
            raise RuntimeError("boom")
        return fake.run_stage2(config, out_dir, init, verbose, callbacks)

    monkeypatch.setattr(trainer, "run_stage1", fake.run_stage1)
    monkeypatch.setattr(trainer, "run_stage2", failing_stage2)
    from catface_keras.config import ExperimentConfig

    lines = []
    summary = runner_module.run_table("fusion", ExperimentConfig(), 1, tmp_path, "tiny",
                                      progress=lines.append)
    assert any("'SE' seed 1: FAILED (RuntimeError: boom)" in line for line in lines)
    seeds = {r["row"]: r["seeds"] for r in summary["rows"]}
    assert seeds["SE"] == [] and seeds["CATF"] == [0]
    with pytest.raises(ValueError, match="`table` must be one of"):
        runner_module.run_table("nope", ExperimentConfig(), 1, tmp_path)


MICRO_BUDGET = {
    "data": {"num_train_identities": 6, "num_test_identities": 14, "images_per_identity": 2,
             "test_images_per_identity": 5, "image_size": 32},
    "model": {"embedding_dim": 8},
    "train": {"epochs": 1, "batch_size": 6},
    "stage2": {"epochs": 1},
    "evaluation": {"num_pairs": 200, "flip": False},
}


@pytest.mark.slow
def test_real_training_of_a_two_row_table_with_two_seeds(tmp_path, monkeypatch):
    from catface_keras.ablation.tables import Row, Table
    from catface_keras.config import ExperimentConfig

    tiny = Table("micro", (Row("stage 1"), Row("add", stage2={"stage2": {"fusion": "add"}})),
                 reference="stage 1", caption="test")
    monkeypatch.setitem(TABLES, "micro", tiny)
    summary = runner_module.run_table("micro", ExperimentConfig(), 2, tmp_path, MICRO_BUDGET,
                                      progress=print)
    for row in summary["rows"]:
        assert row["seeds"] == [0, 1]
        tar = row["metrics"]["degraded/tar_at_far_1e-2"]
        assert tar["n"] == 2 and 0.0 <= tar["mean"] <= 1.0
    assert (tmp_path / "stage2" / "add" / "seed1" / "stage2.keras").exists()


@pytest.mark.parametrize("budget", ["tiny", "small", "full"])
def test_every_row_of_every_table_is_a_valid_config_on_the_demo(budget):
    # A row whose changes the config refuses would fail only when its turn comes to train
    # (the attribute table's 1-4 SB rows did, on the synthetic faces).
    import pathlib

    from catface_keras.ablation.budgets import apply_budget, apply_changes
    from catface_keras.config import load_config

    demo = load_config(
        pathlib.Path(__file__).resolve().parents[2] / "training" / "configs" / "demo.yaml"
    )
    base = apply_budget(demo, budget)
    for table in TABLES.values():
        for row in table.rows:
            config = apply_changes(apply_changes(base, row.stage1), row.stage2 or {})
            if row.teacher is not None:
                apply_changes(base, row.teacher)
            if table.name == "attributes":
                assert len(config.model.attribute_names) == max(int(row.name.split()[0]), 1)


def _with_attributes(fake):
    """`fake`'s metrics plus one attribute (Bald: base 0.9) in the evaluation's form."""
    plain = fake._metrics

    def metrics(config, out_dir):
        result = plain(config, out_dir)
        scores = {"accuracy": 0.9, "majority_rate": 0.9, "balanced_accuracy": 0.6,
                  "balanced_accuracy_ci": [0.5, 0.7]}
        result["attributes"] = {c: {"accuracy": {"Bald": 0.9}, "per_attribute": {"Bald": scores}}
                                for c in ("clean", "degraded")}
        return result

    fake._metrics = metrics
    return fake


def test_rows_budget_vocabulary_and_every_csv_metric_in_table_md(tmp_path, monkeypatch, capsys):
    import csv

    fake = _with_attributes(FakeTrainer())
    monkeypatch.setattr(trainer, "run_stage1", fake.run_stage1)
    monkeypatch.setattr(trainer, "run_stage2", fake.run_stage2)
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  epochs: 40\n")
    out = tmp_path / "out"
    argv = ["ablate", "--table", "fusion", "--config", str(config), "--seeds", "1",
            "--out", str(out), "--rows", "stage 1,catf"]
    assert cli_main.main(argv) == 0
    # Only the two rows named (a name and a slug) were trained: one stage-1, one stage-2 run.
    assert [call[0] for call in fake.calls] == ["stage1", "stage2"]
    printed = capsys.readouterr().out
    markdown = (out / "table.md").read_text()
    # The small budget's overrides, printed and at the top of table.md.
    assert "[fusion] budget small: train.epochs: 6" in printed
    assert markdown.index("- train.epochs: 6") < markdown.index("## ")
    assert "- evaluation.num_pairs: 1000" in markdown
    assert "HQ" not in markdown and "LQ" not in markdown
    assert "| clean | degraded | mixed | Δ clean [95 % CI]" in markdown
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    for metric in {row["metric"] for row in rows}:
        if "." not in metric:
            assert f"## {METRIC_TITLES.get(metric, metric)}, held-out identities" in markdown
    # Attributes: base rate, accuracy, balanced accuracy and its interval, by hand.
    assert "| stage 1 | Bald | 0.900 | 0.900 | 0.600 | [0.500, 0.700] | (reference) |" in markdown
    assert "| CATF | Bald | 0.900 | 0.900 | 0.600 | [0.500, 0.700] | +0.000 [n/a, n/a] |" in (
        markdown)
    assert {row["metric"] for row in rows} >= {"Bald.balanced_accuracy", "Bald.majority_rate"}
    # Rows not named show no seeds; a later call adds one row, the earlier ones are kept.
    assert "| concat | 0 |" in markdown
    assert cli_main.main([*argv[:-1], "concat"]) == 0
    assert len(fake.calls) == 3 and "| concat | 1 |" in (out / "table.md").read_text()


def test_unknown_row_and_lonely_pairs_root_are_refused(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  seed: 1\n")
    base = ["ablate", "--table", "fusion", "--config", str(config), "--out", str(tmp_path / "o")]
    assert cli_main.main([*base, "--rows", "CATF,nope"]) == 2
    error = capsys.readouterr().err
    assert "Received: rows=['CATF', 'nope']" in error and "'concat'" in error
    assert cli_main.main([*base, "--pairs-root", str(tmp_path)]) == 2
    assert "--pairs-root goes with --pairs-file" in capsys.readouterr().err
    assert cli_main.main([*base, "--pairs-file", str(tmp_path / "absent.txt")]) == 2
    assert "absent.txt is not a file" in capsys.readouterr().err


def test_rows_are_scored_on_a_pairs_file(tmp_path, monkeypatch):
    from catface_keras.config import ExperimentConfig
    from catface_keras.evaluation import protocols

    fake = FakeTrainer()
    monkeypatch.setattr(trainer, "run_stage1", fake.run_stage1)
    monkeypatch.setattr(trainer, "run_stage2", fake.run_stage2)
    loaded, scored = [], []

    class Model:
        image_size = 32

    monkeypatch.setattr("catface_keras.models.loading.load_model",
                        lambda path: loaded.append(path) or Model())
    monkeypatch.setattr(runner_module, "pairs_file_data",
                        lambda pairs_file, root, size: ("pairs", str(pairs_file), size))

    def evaluate(model, data, names, **kwargs):
        scored.append(data)
        value = 0.25 if len(scored) == 1 else 0.75
        return {"verification": {c: {"tar_at_far_1e-2": value, "auc": 0.5, "accuracy": 0.5}
                                 for c in ("clean", "degraded", "mixed")}}, {}

    monkeypatch.setattr(protocols, "evaluate", evaluate)
    summary = runner_module.run_table("fusion", ExperimentConfig(), 1, tmp_path, "tiny",
                                      progress=lambda line: None, rows=["stage 1", "CATF"],
                                      pairs=(tmp_path / "lfw.bin", tmp_path))
    # The stage-1 row scores stage1.keras, the CATF row its stage-2 model; the pairs are
    # read once per input size.
    assert [pathlib.Path(p).name for p in loaded] == ["stage1.keras", "stage2.keras"]
    assert scored == [("pairs", str(tmp_path / "lfw.bin"), 32)] * 2
    by_row = {row["row"]: row["metrics"] for row in summary["rows"]}
    assert by_row["stage 1"]["pairs:degraded/tar_at_far_1e-2"]["mean"] == 0.25
    assert by_row["CATF"]["pairs:degraded/tar_at_far_1e-2"]["vs_reference"]["diff"] == 0.5
    markdown = (tmp_path / "table.md").read_text()
    assert "## TAR at FAR = 1e-2, the pairs file" in markdown
    assert "| CATF | 1 | 0.750 ± n/a | 0.750 ± n/a | 0.750 ± n/a | +0.500 [n/a, n/a]" in markdown


def test_attribute_rows_keep_the_weights_of_the_attributes_they_keep():
    # Weights given per attribute: the attributes table's rows predict fewer attributes and
    # must keep the matching weights.
    import pathlib

    from catface_keras.ablation.budgets import apply_budget, apply_changes
    from catface_keras.config import load_config

    small = load_config(pathlib.Path(__file__).resolve().parents[2] / "training" / "configs"
                        / "celeba_small.yaml")
    # The CelebA configs say "balanced": each row computes its own from the labels.
    assert small.loss.attribute_positive_weights == "balanced"
    assert {apply_changes(small, row.stage1).loss.attribute_positive_weights
            for row in TABLES["attributes"].rows} == {"balanced"}
    base = apply_budget(
        small.replace("loss", attribute_positive_weights=[1.35, 40.8, 3.14, 15.5, 7.66]), "small"
    )
    weights = {row.name: apply_changes(base, row.stage1).loss.attribute_positive_weights
               for row in TABLES["attributes"].rows}
    assert weights["5 SB"] == [1.35, 40.8, 3.14, 15.5, 7.66]
    assert weights["2 SB"] == [1.35, 40.8] and weights["0 SB"] == [1.35]
    changed = apply_changes(base, {"model": {"attribute_names": ["Chubby", "Male"]}})
    assert changed.loss.attribute_positive_weights == [15.5, 1.35]
    # Weights given with the change are taken as they are.
    explicit = apply_changes(base, {"model": {"attribute_names": ["Male"]},
                                    "loss": {"attribute_positive_weights": [2.0]}})
    assert explicit.loss.attribute_positive_weights == [2.0]
