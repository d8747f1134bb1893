"""`report.md` of `catface evaluate`: the attribute table with base rates and balanced accuracy."""

from catface_keras.evaluation.report import format_evaluation_report


def _attributes(accuracy, balanced, interval):
    return {
        "accuracy": {"Bald": accuracy},
        "mean": accuracy,
        "mean_balanced_accuracy": balanced,
        "per_attribute": {"Bald": {"accuracy": accuracy, "majority_rate": 0.975,
                                   "balanced_accuracy": balanced,
                                   "balanced_accuracy_ci": interval}},
    }


def test_attribute_rows_show_base_rate_accuracy_and_balanced_accuracy():
    report = {
        "data": {"source": "celeba", "num_images": 40},
        "degradation": {"function": "degrade", "seed": 1, "at": "after resizing"},
        "models": [{"label": "m", "path": "m.keras", "image_size": 32}],
        "protocols": ["attributes"],
        "conditions": ["clean", "degraded", "mixed"],
        "results": {"m": {"attributes": {
            "clean": _attributes(0.975, 0.5, [0.45, 0.6]),
            "degraded": _attributes(0.95, 0.6125, [0.5, 0.7]),
        }}},
        "notes": [],
    }
    text = format_evaluation_report(report)
    header = next(line for line in text.splitlines() if line.startswith("| Model | Attribute"))
    assert header == ("| Model | Attribute | Base % | Acc. % (clean) "
                      "| Bal. acc. % [95 % CI] (clean) | Acc. % (degr.) "
                      "| Bal. acc. % [95 % CI] (degr.) |")
    assert ("| m | Bald | 97.50 | 97.50 | 50.00 [45.00, 60.00] | 95.00 | 61.25 [50.00, 70.00] |"
            in text)
    assert "| m | mean |  | 97.50 | 50.00 | 95.00 | 61.25 |" in text
    assert "Base: share of the majority class" in text
