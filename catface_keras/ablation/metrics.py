"""Reading a verification number out of the trainer's held-out metrics.

The evaluation's key vocabulary is moving from `hq_hq/lq_lq/hq_lq` to
`clean/degraded/mixed`; `verification_metric` reads both, so the tables use
one name per condition.
"""

import math

CONDITIONS = ("clean", "degraded", "mixed")
LEGACY_CONDITIONS = {"clean": "hq_hq", "degraded": "lq_lq", "mixed": "hq_lq"}
CONDITION_LABELS = {"clean": "HQ-HQ", "degraded": "LQ-LQ", "mixed": "HQ-LQ"}
DEFAULT_METRICS = ("tar_at_far_1e-2", "auc", "accuracy")


def verification_metric(stage_metrics, condition, metric):
    """`stage_metrics["verification"][condition][metric]`, or NaN when absent.

    Args:
        stage_metrics: one stage's entry of `metrics.json` (e.g. `metrics["stage1"]`).
        condition: one of `CONDITIONS`; the legacy key is tried as well.
        metric: e.g. `"tar_at_far_1e-2"`, `"auc"`, `"accuracy"`.
    """
    verification = (stage_metrics or {}).get("verification", {})
    entry = verification.get(condition, verification.get(LEGACY_CONDITIONS[condition], {}))
    value = entry.get(metric) if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) else math.nan


def row_metrics(stage_metrics, metrics=DEFAULT_METRICS):
    """`{"condition/metric": value}` for every condition and metric."""
    return {
        f"{condition}/{metric}": verification_metric(stage_metrics, condition, metric)
        for condition in CONDITIONS
        for metric in metrics
    }
