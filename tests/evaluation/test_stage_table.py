from catface_keras.evaluation.report import format_stage_table


def _stage(accuracy):
    def pair(shift):
        return {"accuracy": accuracy - shift, "tar_at_far_1e-2": (accuracy - shift) / 2}

    return {
        "verification": {"clean": pair(0.0), "degraded": pair(0.25), "mixed": pair(0.125)},
        "attributes": {"clean": _attributes(0.9), "degraded": _attributes(0.8)},
    }


def _attributes(male_accuracy):
    # Male: base rate 0.6, balanced accuracy 0.85 [0.7, 0.95]; Bald unlabelled.
    male = {"majority_rate": 0.6, "balanced_accuracy": male_accuracy - 0.05,
            "balanced_accuracy_ci": [0.7, 0.95]}
    return {"accuracy": {"Male": male_accuracy, "Bald": None},
            "per_attribute": {"Male": male, "Bald": {"majority_rate": None,
                                                     "balanced_accuracy": None,
                                                     "balanced_accuracy_ci": [None, None]}}}


def _row(table, start):
    return next(line for line in table.splitlines() if line.startswith(start)).split()[1:]


def test_stages_side_by_side_in_the_condition_vocabulary():
    table = format_stage_table({"stage2": _stage(0.75), "stage1": _stage(0.5)})
    header = next(line for line in table.splitlines() if line.startswith("condition"))
    assert header.index("stage1 acc") < header.index("stage2 acc") and "TAR@1e-2" in header
    assert _row(table, "clean") == ["0.500", "0.250", "0.750", "0.375"]
    assert _row(table, "degraded ") == ["0.250", "0.125", "0.500", "0.250"]
    assert _row(table, "mixed") == ["0.375", "0.188", "0.625", "0.312"]
    # A block per stage: base rate, then per condition accuracy, balanced accuracy [95 % CI].
    male = ["0.600", "0.900", "0.850", "[0.700,", "0.950]", "0.800", "0.750", "[0.700,", "0.950]"]
    stage1_block = table[table.index("Attributes (held-out), stage1"):]
    stage2_block = table[table.index("Attributes (held-out), stage2"):]
    assert _row(stage1_block, "Male") == male and _row(stage2_block, "Male") == male
    assert _row(stage1_block, "Bald") == ["n/a"] * 5
    assert "base: share of the majority class" in table
    assert "clean bal. [95 % CI]" in table and "degraded acc" in table


def test_skipped_stage_prints_its_reason():
    only_skipped = format_stage_table({"stage1": {"skipped": "no held-out faces"}})
    assert only_skipped == "stage1: evaluation skipped, no held-out faces"
    mixed = format_stage_table({"stage1": _stage(0.5), "stage2": {"skipped": "no faces"}})
    assert "stage2 acc" not in mixed and mixed.endswith("stage2: evaluation skipped, no faces")


def test_no_attribute_table_without_attribute_labels():
    unlabelled = _stage(0.5)
    for condition in ("clean", "degraded"):
        unlabelled["attributes"][condition] = {"accuracy": {"Male": None, "Bald": None}}
    table = format_stage_table({"stage1": unlabelled})
    assert "Attributes" not in table and "Male" not in table
    assert _row(table, "clean") == ["0.500", "0.250"]


def test_results_without_balanced_scores_print_n_a():
    older = _stage(0.5)
    for condition, accuracy in (("clean", 0.9), ("degraded", 0.7)):
        older["attributes"][condition] = {"accuracy": {"Male": accuracy}}
    assert _row(format_stage_table({"stage1": older}), "Male") == [
        "n/a", "0.900", "n/a", "0.700", "n/a"]
