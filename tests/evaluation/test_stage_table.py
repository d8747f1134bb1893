from catface_keras.evaluation.report import format_stage_table


def _stage(accuracy):
    def pair(shift):
        return {"accuracy": accuracy - shift, "tar_at_far_1e-2": (accuracy - shift) / 2}

    return {
        "verification": {"clean": pair(0.0), "degraded": pair(0.25), "mixed": pair(0.125)},
        "attributes": {"clean": {"accuracy": {"Male": 0.9, "Bald": None}},
                       "degraded": {"accuracy": {"Male": 0.8, "Bald": None}}},
    }


def _row(table, start):
    return next(line for line in table.splitlines() if line.startswith(start)).split()[1:]


def test_stages_side_by_side_in_the_condition_vocabulary():
    table = format_stage_table({"stage2": _stage(0.75), "stage1": _stage(0.5)})
    header = next(line for line in table.splitlines() if line.startswith("condition"))
    assert header.index("stage1 acc") < header.index("stage2 acc") and "TAR@1e-2" in header
    assert _row(table, "clean") == ["0.500", "0.250", "0.750", "0.375"]
    assert _row(table, "degraded ") == ["0.250", "0.125", "0.500", "0.250"]
    assert _row(table, "mixed") == ["0.375", "0.188", "0.625", "0.312"]
    assert _row(table, "Male") == ["0.900", "0.800", "0.900", "0.800"]
    assert _row(table, "Bald") == ["n/a"] * 4
    assert "stage1 clean" in table and "stage2 degraded" in table


def test_skipped_stage_prints_its_reason():
    only_skipped = format_stage_table({"stage1": {"skipped": "no held-out faces"}})
    assert only_skipped == "stage1: evaluation skipped, no held-out faces"
    mixed = format_stage_table({"stage1": _stage(0.5), "stage2": {"skipped": "no faces"}})
    assert "stage2 acc" not in mixed and mixed.endswith("stage2: evaluation skipped, no faces")


def test_no_attribute_table_without_attribute_labels():
    unlabelled = _stage(0.5)
    for condition in ("clean", "degraded"):
        unlabelled["attributes"][condition]["accuracy"] = {"Male": None, "Bald": None}
    table = format_stage_table({"stage1": unlabelled})
    assert "Attribute accuracy" not in table and "Male" not in table
    assert _row(table, "clean") == ["0.500", "0.250"]
