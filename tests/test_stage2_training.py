"""Stage-2 runs: from a stage-1 model on disk, through the CLI, resumable."""

import json

import keras
import numpy as np
import pytest
import yaml

from catface_keras.cli.main import main
from catface_keras.config import config_from_dict
from catface_keras.models.builders import MissingStage1Error
from catface_keras.run_directory import OutputDirectoryError
from catface_keras.trainer import run_stage1, run_stage2
from tiny_models import TINY_EXPERIMENT as TINY, StopAfterFirstEpoch

pytestmark = pytest.mark.slow  # every test trains (stage 1 once, stage 2 per test)

TINY_STAGE2 = {**TINY, "train": {**TINY["train"], "epochs": 1},
               "stage2": {"epochs": 2, "num_heads": 2, "expansion": 2}}


@pytest.fixture(scope="module")
def stage1_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1")
    run_stage1(config_from_dict(TINY_STAGE2), out, verbose=0)
    return out


def test_stage2_from_init_reports_both_stages_and_resumes(stage1_dir, tmp_path):
    # Resuming does not depend on the fusion kind; "add" keeps the test quick.
    config = config_from_dict(TINY_STAGE2).replace("stage2", fusion="add")
    init = stage1_dir / "stage1.keras"
    straight, metrics = run_stage2(config, tmp_path / "straight", init=init, verbose=0)
    assert set(metrics) == {"stage1", "stage2"}
    for stage in metrics.values():
        assert set(stage["verification"]) == {"clean", "degraded", "mixed"}
        assert set(stage["verification"]["degraded"]) >= {"accuracy", "accuracy_std", "auc",
                                                          "eer", "tar_at_far_1e-2"}
    # Stage 1 is frozen, so its attribute head answers as before.
    assert metrics["stage1"]["attributes"] == metrics["stage2"]["attributes"]
    saved = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))

    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run_stage2(config, killed, init=init, verbose=0, callbacks=[StopAfterFirstEpoch()])
    assert (killed / "backup_stage2").exists() and not (killed / "stage2.keras").exists()
    resumed, _ = run_stage2(config, killed, init=init, verbose=0)
    for expected, got in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == [
        "stage2_epoch_001.keras", "stage2_epoch_002.keras"]
    assert not (killed / "backup_stage2").exists()


def test_missing_stage1_is_named(stage1_dir, tmp_path):
    config = config_from_dict(TINY_STAGE2)
    with pytest.raises(MissingStage1Error, match="nowhere.keras does not exist"):
        run_stage2(config, tmp_path, init=tmp_path / "nowhere.keras", verbose=0)


def test_cli_stage2_in_the_stage1_directory(stage1_dir, tmp_path, capsys):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(TINY_STAGE2))
    out = tmp_path / "run"
    args = ["train", "--config", str(config_path), "--out", str(out)]
    assert main([*args, "--stage", "2"]) == 2
    assert "Train stage 1 first" in capsys.readouterr().err
    # Stage 2 next to its own stage 1: the stage-1 metrics are kept as they were.
    out.mkdir()
    for name in ("stage1.keras", "metrics.json"):
        (out / name).write_bytes((stage1_dir / name).read_bytes())
    stage1_metrics = json.loads((out / "metrics.json").read_text())["stage1"]
    # --stage all on a finished stage 1 goes on with stage 2 (as after a kill in stage 2).
    assert main([*args, "--stage", "all", "--fusion", "concat", "--epochs", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stage1"] == stage1_metrics
    printed = capsys.readouterr().out
    assert "Stage 1 already finished" in printed
    assert "stage2 acc" in printed and "stage1 acc" in printed
    restored = keras.saving.load_model(out / "stage2.keras")
    assert restored.fusion == "concat"
    # A finished stage 2 is refused; stage 1 is untouched by that refusal.
    with pytest.raises(OutputDirectoryError, match="stage2.keras"):
        run_stage2(config_from_dict(TINY_STAGE2), out, verbose=0)
    assert main([*args, "--stage", "1", "--init", "x.keras"]) == 2
    assert "--init only applies to --stage 2" in capsys.readouterr().err


def test_overwriting_stage1_removes_the_stage2_built_on_it(stage1_dir, tmp_path):
    config = config_from_dict(TINY_STAGE2)
    for name in ("stage1.keras", "metrics.json"):
        (tmp_path / name).write_bytes((stage1_dir / name).read_bytes())
    (tmp_path / "stage2.keras").write_bytes(b"stale")
    run_stage1(config, tmp_path, overwrite=True, verbose=0)
    assert not (tmp_path / "stage2.keras").exists()
    assert set(json.loads((tmp_path / "metrics.json").read_text())) == {"stage1"}
