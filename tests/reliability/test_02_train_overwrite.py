"""Item 2: `--overwrite` keeps the finished run until the new one has finished."""

import yaml

from catface_keras.cli.main import main
from catface_keras.config import config_from_dict
from catface_keras.trainer import DatasetError, run_stage1

from reliability.helpers import fake_finished_run, leftovers, snapshot
from tiny_models import TINY_EXPERIMENT as TINY


def test_failing_overwrite_leaves_the_finished_run_untouched(tmp_path):
    out = fake_finished_run(tmp_path / "run")
    before = snapshot(out)
    broken = config_from_dict({**TINY, "data": {"source": "image_folder",
                                                 "path": str(tmp_path / "missing")}})
    try:
        run_stage1(broken, out, overwrite=True, verbose=0)
    except DatasetError as error:
        assert "data.path" in str(error) and "missing" in str(error)
    else:
        raise AssertionError("a missing data.path must fail")
    # Before: only the new config.yaml was left; the models, metrics and logs were deleted.
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_demo_on_another_configs_run_keeps_its_config(tmp_path, capsys):
    other = yaml.safe_dump({**TINY, "train": {**TINY["train"], "epochs": 7}})
    out = fake_finished_run(tmp_path / "run", other)
    (out / "stage2.keras").unlink()  # stage 1 finished, stage 2 not
    before = snapshot(out)
    # Before: demo went on with stage 2 and rewrote config.yaml with its own configuration.
    assert main(["demo", "--out", str(out), "--epochs", "1"]) == 2
    error = capsys.readouterr().err
    assert "another configuration" in error and "--overwrite" in error
    assert snapshot(out) == before
