"""Reading the numbers of a table row out of the trainer's held-out metrics.

The evaluation's key vocabulary moved from `hq_hq/lq_lq/hq_lq` to
`clean/degraded/mixed`; `verification_metric` reads both, so the tables use
one name per condition: clean, degraded, mixed.
"""

import math

CONDITIONS = ("clean", "degraded", "mixed")
LEGACY_CONDITIONS = {"clean": "hq_hq", "degraded": "lq_lq", "mixed": "hq_lq"}
DEFAULT_METRICS = ("tar_at_far_1e-2", "auc", "accuracy")
# Per attribute and condition; `balanced_low`/`balanced_high` bound balanced accuracy's
# 95 % interval (`catface_keras.evaluation.attributes`).
ATTRIBUTE_FIELDS = ("accuracy", "majority_rate", "balanced_accuracy", "balanced_low",
                    "balanced_high")
# Key prefix of the numbers measured on `catface ablate --pairs-file`.
PAIRS_PREFIX = "pairs:"


def _number(value):
    return float(value) if isinstance(value, (int, float)) else math.nan


def verification_metric(stage_metrics, condition, metric):
    """`stage_metrics["verification"][condition][metric]`, or NaN when absent.

    Args:
        stage_metrics: one stage's entry of `metrics.json` (e.g. `metrics["stage1"]`).
        condition: one of `CONDITIONS`; the legacy key is tried as well.
        metric: e.g. `"tar_at_far_1e-2"`, `"auc"`, `"accuracy"`.
    """
    verification = (stage_metrics or {}).get("verification", {})
    entry = verification.get(condition, verification.get(LEGACY_CONDITIONS[condition], {}))
    return _number(entry.get(metric) if isinstance(entry, dict) else None)


def attribute_metrics(stage_metrics):
    """`{"condition/Name.field": value}` for every labelled attribute and `ATTRIBUTE_FIELDS`."""
    values = {}
    for condition, result in (stage_metrics or {}).get("attributes", {}).items():
        for name, scores in (result or {}).get("per_attribute", {}).items():
            low, high = scores.get("balanced_accuracy_ci") or (None, None)
            fields = {"accuracy": scores.get("accuracy"),
                      "majority_rate": scores.get("majority_rate"),
                      "balanced_accuracy": scores.get("balanced_accuracy"),
                      "balanced_low": low, "balanced_high": high}
            for field in ATTRIBUTE_FIELDS:
                values[f"{condition}/{name}.{field}"] = _number(fields[field])
    return values


def row_metrics(stage_metrics, metrics=DEFAULT_METRICS, pairs_metrics=None):
    """`{"condition/metric": value}` for every condition and metric, the attributes'
    `attribute_metrics`, and with `pairs_metrics` (evaluate's verification results on a
    pair list) the same verification numbers under `"pairs:condition/metric"`."""
    values = {
        f"{condition}/{metric}": verification_metric(stage_metrics, condition, metric)
        for condition in CONDITIONS
        for metric in metrics
    }
    values.update(attribute_metrics(stage_metrics))
    if pairs_metrics is not None:
        values.update({
            f"{PAIRS_PREFIX}{condition}/{metric}": verification_metric(pairs_metrics, condition,
                                                                      metric)
            for condition in CONDITIONS
            for metric in metrics
        })
    return values
