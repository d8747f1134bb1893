"""Tables of evaluation metrics: plain text for the terminal, Markdown for `catface evaluate`.

Both use the conditions of `choices.EVALUATION_CONDITIONS`: clean, degraded, mixed
(one side of each pair clean, the other degraded).
"""

from catface_keras.choices import EVALUATION_CONDITIONS as CONDITIONS
from catface_keras.evaluation.roc import FAR_DECADES, far_key

STAGE_TABLE_FAR = 1e-2


def _number(value, width):
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


def format_stage_table(metrics):
    """A table of `{"stage1": {...}, "stage2": {...}}` metrics, stages side by side.

    Each stage holds `evaluate`'s results: `verification[condition]` with
    `accuracy` and `tar_at_far_1e-2`, and `attributes[condition]["accuracy"]`.
    A stage evaluated on nothing (`{"skipped": reason}`) is listed by its reason.
    """
    skipped = [f"{stage}: evaluation skipped, {metrics[stage]['skipped']}"
               for stage in sorted(metrics) if "skipped" in metrics[stage]]
    stages = sorted(stage for stage in metrics if "skipped" not in metrics[stage])
    if not stages:
        return "\n".join(skipped)
    tar_key = far_key(STAGE_TABLE_FAR)
    tar_title = tar_key.replace("tar_at_far_", "TAR@")
    verification = metrics[stages[0]]["verification"]
    conditions = [c for c in CONDITIONS if c in verification]
    header = "condition".ljust(10) + "".join(
        f"{stage + ' acc':>14}{stage + ' ' + tar_title:>18}" for stage in stages
    )
    lines = ["Verification on held-out identities (10-fold accuracy)", header, "-" * len(header)]
    for condition in conditions:
        row = condition.ljust(10)
        for stage in stages:
            result = metrics[stage]["verification"].get(condition, {})
            row += _number(result.get("accuracy"), 14) + _number(result.get(tar_key), 18)
        lines.append(row)
    lines.append("degraded: both images degraded at the model's input size; mixed: one clean, "
                 "one degraded")
    # Held-out faces without attribute labels (no attribute CSV) get no attribute table.
    attributes = metrics[stages[0]].get("attributes", {})
    attribute_conditions = [c for c in CONDITIONS if c in attributes]
    labelled = any(
        value is not None
        for stage in stages
        for condition in attribute_conditions
        for value in metrics[stage]["attributes"][condition]["accuracy"].values()
    )
    if labelled:
        lines += [""] + _attribute_stage_lines(metrics, stages, attribute_conditions)
    return "\n".join(lines + ([""] + skipped if skipped else []))


def attribute_scores_of(results, name):
    """`(accuracy, majority_rate, balanced_accuracy, [low, high])` of one attribute
    in an `attributes[condition]` result (None where a result predates the
    balanced scores or the attribute has no label)."""
    scores = results.get("per_attribute", {}).get(name, {})
    interval = scores.get("balanced_accuracy_ci") or [None, None]
    return (results["accuracy"].get(name), scores.get("majority_rate"),
            scores.get("balanced_accuracy"), interval)


def format_balanced(balanced, interval):
    """`0.712 [0.650, 0.770]`, or `n/a`."""
    if balanced is None:
        return "n/a"
    if None in interval:
        return f"{balanced:.3f}"
    return f"{balanced:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


BASE_RATE_NOTE = ("base: share of the majority class, the accuracy of always answering it; "
                  "bal.: balanced accuracy (mean of the true-positive and true-negative "
                  "rates, 0.5 for any constant answer) with a 95 % interval, the mean of the "
                  "per-class Wilson bounds")


def _attribute_stage_lines(metrics, stages, conditions):
    """One block per stage: a row per attribute with the base rate, then accuracy and
    balanced accuracy [95 % CI] per condition."""
    names = list(metrics[stages[0]]["attributes"][conditions[0]]["accuracy"])
    header = "attribute".ljust(14) + f"{'base':>7}" + "".join(
        f"{condition + ' acc':>{len(condition) + 6}}"
        f"{condition + ' bal. [95 % CI]':>{len(condition) + 17}}"
        for condition in conditions
    )
    lines = []
    for stage in stages:
        lines += [f"Attributes (held-out), {stage}", header, "-" * len(header)]
        for name in names:
            base, cells = None, ""
            for condition in conditions:
                accuracy, majority, balanced, interval = attribute_scores_of(
                    metrics[stage]["attributes"][condition], name)
                base = majority if base is None else base
                cells += _number(accuracy, len(condition) + 6)
                cells += f"{format_balanced(balanced, interval):>{len(condition) + 17}}"
            lines.append(name.ljust(14) + _number(base, 7) + cells)
        lines.append("")
    lines.append(BASE_RATE_NOTE)
    return lines


# Markdown report of `catface evaluate`: one table per protocol in the paper's
# layout, a row per model, each metric's values per condition side by side.

_CONDITION_LABELS = {"clean": "clean", "degraded": "degr.", "mixed": "mixed"}


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.2f}"


def _plain(value):
    return "n/a" if value is None else f"{value:.4f}"


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _side_by_side(results, protocol, conditions, columns):
    """Rows of `(model, metric clean, metric degraded, ...)` for `columns` =
    list of `(title, getter(metrics) -> value, formatter)`."""
    header = ["Model"] + [
        f"{title} ({_CONDITION_LABELS.get(c, c)})" for title, _, _ in columns for c in conditions
    ]
    rows = []
    for label, by_protocol in results.items():
        row = [label]
        for _, getter, formatter in columns:
            for condition in conditions:
                metrics = by_protocol[protocol].get(condition)
                row.append("n/a" if metrics is None else formatter(getter(metrics)))
        rows.append(row)
    return _markdown_table(header, rows)


def _pair_columns(results, protocol, conditions, include_accuracy):
    columns = []
    if include_accuracy:
        columns.append(("Acc. %", lambda m: m["accuracy"], _percent))
        columns.append(("Acc. std", lambda m: m["accuracy_std"], _percent))
    for far in FAR_DECADES:
        key = far_key(far)
        measured = any(
            by_protocol[protocol][c][key] is not None
            for by_protocol in results.values() for c in conditions if c in by_protocol[protocol]
        )
        if measured:
            columns.append((f"TAR@FAR={far:.0e}".replace("e-0", "e-"),
                            lambda m, key=key: m[key], _percent))
    columns.append(("AUC", lambda m: m["auc"], _plain))
    columns.append(("EER %", lambda m: m["eer"], _percent))
    return columns


def _attribute_markdown(results, conditions):
    """A row per model and attribute: base rate, then accuracy and balanced accuracy
    [95 % CI] per condition, and a mean row per model."""
    header = ["Model", "Attribute", "Base %"] + [
        f"{title} ({_CONDITION_LABELS.get(c, c)})"
        for c in conditions for title in ("Acc. %", "Bal. acc. % [95 % CI]")
    ]
    rows = []
    for label, by_protocol in results.items():
        attributes = by_protocol["attributes"]
        names = list(attributes[conditions[0]]["accuracy"])
        for name in names:
            base, cells = None, []
            for condition in conditions:
                accuracy, majority, balanced, interval = attribute_scores_of(
                    attributes[condition], name)
                base = majority if base is None else base
                cells += [_percent(accuracy), _percent_interval(balanced, interval)]
            rows.append([label, name, _percent(base)] + cells)
        cells = []
        for condition in conditions:
            cells += [_percent(attributes[condition]["mean"]),
                      _percent(attributes[condition].get("mean_balanced_accuracy"))]
        rows.append([label, "mean", ""] + cells)
    return _markdown_table(header, rows)


def _percent_interval(value, interval):
    if value is None:
        return "n/a"
    if None in interval:
        return _percent(value)
    return f"{_percent(value)} [{_percent(interval[0])}, {_percent(interval[1])}]"


def format_evaluation_report(report):
    """The Markdown of `catface evaluate`'s `report.md` from its `results.json` dict.

    Args:
        report: dict with `data`, `models`, `protocols`, `conditions`,
            `results` (`{model label: {protocol: {condition: metrics}}}`),
            `notes` and optionally `plots`.
    """
    results, conditions = report["results"], report["conditions"]
    data = report["data"]
    lines = ["# CATFace evaluation", ""]
    degradation = report["degradation"]
    lines.append(f"Data: `{data['source']}` ({data.get('num_images', '?')} images). "
                 f"Degraded (degr.): every image degraded by `{degradation['function']}` "
                 f"(seed {degradation['seed']}); {degradation['at']}. Mixed: the first image "
                 "of each pair (the gallery, for identification) clean, the second (the "
                 "probes) degraded.")
    lines.append("")
    for model in report["models"]:
        computed = model.get("precision", {})
        precision = f", computed in {computed['precision']}" if computed else ""
        agreement = computed.get("cosine_to_float32")
        if agreement:
            precision += (f", embedding cosine to float32 min {agreement['cosine_min']:.6f} on "
                          f"{agreement['images']} images")
        lines.append(f"- `{model['label']}`: `{model['path']}` (input {model['image_size']} px"
                     f"{precision})")
    lines.append("")
    protocols = report["protocols"]
    any_results = next(iter(results.values()))
    if "verification" in protocols:
        first = any_results["verification"][conditions[0]]
        search = {"insightface": "insightface's thresholds", "exact": "exact thresholds"}
        lines += [f"## 1:1 verification ({first['num_genuine']} genuine, "
                  f"{first['num_impostor']} impostor pairs; 10-fold accuracy with "
                  f"{search.get(first.get('threshold_search'), 'thresholds')}, "
                  f"{'flip fusion' if report.get('flip', True) else 'no flip'})", ""]
        lines += _side_by_side(results, "verification", conditions,
                               _pair_columns(results, "verification", conditions, True))
        lines.append("")
    if "templates" in protocols:
        first = any_results["templates"][conditions[0]]
        lines += [f"## Template verification, IJB-B/C style ({first['num_templates']} templates, "
                  f"{first['num_genuine']} genuine and {first['num_impostor']} impostor "
                  "template pairs)", ""]
        lines += _side_by_side(results, "templates", conditions,
                               _pair_columns(results, "templates", conditions, False))
        lines.append("")
    if "identification" in protocols:
        for name, first in any_results["identification"][conditions[0]].items():
            columns = [(f"rank-{k} %", lambda m, k=k, name=name: m[name][f"rank_{k}"], _percent)
                       for k in (1, 5, 10, 20) if f"rank_{k}" in first]
            for group in first.get("rank_1_by_group", {}):
                columns.append((f"rank-1 {group} %",
                                lambda m, g=group, name=name: m[name]["rank_1_by_group"][g],
                                _percent))
            lines += [f"## Identification: {name.replace('_', ' ')} ({first['num_probes']} probes, "
                      f"{first['num_gallery_images']} gallery images of which "
                      f"{first['num_distractors']} distractors)", ""]
            lines += _side_by_side(results, "identification", conditions, columns)
            lines.append("")
    attribute_conditions = [c for c in conditions if c in any_results.get("attributes", {})]
    if "attributes" in protocols and attribute_conditions:
        lines += ["## Soft-biometric attributes", ""]
        lines += _attribute_markdown(results, attribute_conditions)
        lines += ["", BASE_RATE_NOTE[0].upper() + BASE_RATE_NOTE[1:] + ".", ""]
    if report.get("plots"):
        lines += ["## Figures", ""]
        lines += [f"- [{plot}]({plot})" for plot in report["plots"]]
        lines.append("")
    if report.get("notes"):
        lines += ["## Notes", ""]
        lines += [f"- {note}" for note in report["notes"]]
        lines.append("")
    return "\n".join(lines)
