"""`benchmarks/run.py --quick --peer` runs end to end on a CPU and writes a sane JSON.

The suite is meant to run unchanged on a GPU machine; this keeps its code paths
(our step with and without XLA, the PyTorch peer, every other entry) from rotting
where there is no GPU. Speed itself is never asserted.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _timed(value):
    return isinstance(value, dict) and value.get("images_per_s", 0) > 0 and "error" not in value


@pytest.mark.slow  # several models, the PyTorch peer and two sub-processes: over a minute
def test_quick_run_writes_every_entry(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]), "CUDA_VISIBLE_DEVICES": ""}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--peer", "--out",
         str(out), "--policy", "mixed_bfloat16"],
        capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=1500)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())
    summary = json.loads(completed.stdout[completed.stdout.index("{"):])

    machine = results["machine"]
    assert (machine["device"], machine["profile"], machine["quick"]) == ("cpu", "quick", True)
    # Entries timed after a model was released keep the policy asked for.
    assert machine["policy"] == "mixed_bfloat16"
    for kind in ("backbone", "stage2", "inference"):
        assert results[kind]["policy"] == "mixed_bfloat16", kind
    assert machine["sizes"]["backbones"] == ["ir_tiny"] and machine["sizes"]["pairs"] == [2]
    assert set(results["gemm_peak_gflops"]) == {"float32", "bfloat16"}
    assert all(value > 0 for value in results["gemm_peak_gflops"].values())

    (stage1,) = results["stage1"].values()
    assert (stage1["backbone"], stage1["pairs"]) == ("ir_tiny", 2)
    assert set(stage1["variants"]) == {"keras", "keras_xla", "float32", "channels_last",
                                       "bf16_autocast_channels_last"}
    for name, variant in stage1["variants"].items():
        assert _timed(variant), (name, variant)
        assert variant["step_s"] > 0 and variant["load_before"] >= 0
        assert 0 <= variant["fraction_of_peak"] < 10 and variant["gflops"] >= 0  # rounded: 0 for slow tiny steps
    # Two images (HQ and LQ) per pair; the best of ours over the best peer.
    assert stage1["ours"]["best"] in ("keras", "keras_xla")
    assert stage1["ratio"] == pytest.approx(
        stage1["ours"]["images_per_s"] / stage1["peer"]["images_per_s"], rel=1e-2)
    assert _timed(results["backbone"]["ours"]) and results["backbone"]["ratio"] > 0

    assert _timed(results["stage2"]["ours"]) and _timed(results["inference"]["ours"])
    assert "error" not in results["export"] and "error" not in results["degrade"]
    pipeline = results["input_pipeline"]
    assert _timed(pipeline) and pipeline["pairs_per_batch"] == 4 and pipeline["host_cores"] >= 1
    assert results["torch"] and results["seconds"] > 0
    assert summary["stage1 ir_tiny/2_pairs"]["ratio"] == stage1["ratio"]
    assert not out.with_suffix(".json.partial").exists()
