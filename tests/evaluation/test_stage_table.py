from catface_keras.evaluation.report import format_stage_table


def _stage(accuracy):
    pair = {"accuracy": accuracy, "tar_at_far_1e-2": accuracy / 2}
    return {
        "verification": {"hq_hq": pair, "lq_lq": pair, "hq_lq": pair},
        "attributes": {"Male": 0.9},
        "attributes_lq": {"Male": 0.8},
    }


def test_stages_side_by_side():
    table = format_stage_table({"stage2": _stage(0.75), "stage1": _stage(0.5)})
    header = next(line for line in table.splitlines() if line.startswith("pairs"))
    assert header.index("stage1 acc") < header.index("stage2 acc")
    lq_row = next(line for line in table.splitlines() if line.startswith("LQ-LQ"))
    assert lq_row.split()[1:] == ["0.500", "0.250", "0.750", "0.375"]
    male = next(line for line in table.splitlines() if line.startswith("Male"))
    assert male.split()[1:] == ["0.900", "0.800", "0.900", "0.800"]


def test_skipped_stage_prints_its_reason():
    only_skipped = format_stage_table({"stage1": {"skipped": "no held-out faces"}})
    assert only_skipped == "stage1: evaluation skipped, no held-out faces"
    mixed = format_stage_table({"stage1": _stage(0.5), "stage2": {"skipped": "no faces"}})
    assert "stage2 acc" not in mixed and mixed.endswith("stage2: evaluation skipped, no faces")
