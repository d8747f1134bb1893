"""Writing an ablation table: table.md, table.csv, results.json and plot.png."""

import csv
import io
import json
import math
import pathlib

from catface_keras.ablation.metrics import CONDITIONS, DEFAULT_METRICS, PAIRS_PREFIX
from catface_keras.ablation.stats import (
    paired_interval,
    pairs_for_width,
    seeds_for_width,
    summarize,
)
from catface_keras.atomic_files import write_atomically, write_text_atomically

PRIMARY = "tar_at_far_1e-2"
# The width of 95 % interval that the precision column plans for.
PRECISION_WIDTH = 0.02


def _metric_keys(records):
    """Every metric key the records hold, verification first, in first-seen order."""
    keys = dict.fromkeys(f"{c}/{m}" for c in CONDITIONS for m in DEFAULT_METRICS)
    for record in records:
        keys.update(dict.fromkeys(record["metrics"]))
    return list(keys)


def summarize_table(table, records, budget=None):
    """Per row: per metric mean/std over seeds and the paired difference to the reference.

    Args:
        budget: the `{section: {key: value}}` overrides the runs trained with, recorded.
    """
    by_row = {row.name: {} for row in table.rows}
    for record in records:
        by_row.setdefault(record["row"], {})[record["seed"]] = record
    reference = by_row.get(table.reference, {})
    rows = []
    for row in table.rows:
        seeds = by_row[row.name]
        entry = {
            "row": row.name,
            "seeds": sorted(seeds),
            "wall_seconds": summarize([r["wall_seconds"] for r in seeds.values()]),
            "train_seconds": summarize([r["train_seconds"] for r in seeds.values()]),
            "metrics": {},
        }
        for key in _metric_keys(records):
            values = {s: r["metrics"].get(key, math.nan) for s, r in seeds.items()}
            ref = {s: r["metrics"].get(key, math.nan) for s, r in reference.items()}
            entry["metrics"][key] = {
                **summarize(values.values()),
                "per_seed": values,
                "vs_reference": paired_interval(values, ref),
            }
        rows.append(entry)
    return {"table": table.name, "caption": table.caption, "reference": table.reference,
            "budget": budget or {}, "rows": rows}


def _fmt(value, digits=3):
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _signed(value):
    return "n/a" if not math.isfinite(value) else f"{value:+.3f}"


METRIC_TITLES = {"tar_at_far_1e-2": "TAR at FAR = 1e-2", "auc": "AUC",
                 "accuracy": "10-fold verification accuracy (insightface's protocol)"}


def _split(key):
    """`(evaluated on, condition, metric)` of a metric key."""
    place = "pairs file" if key.startswith(PAIRS_PREFIX) else "held-out"
    condition, metric = key.removeprefix(PAIRS_PREFIX).split("/", 1)
    return place, condition, metric


def budget_lines(budget):
    """`section.key: value` lines of a budget's overrides (what `--budget` replaced)."""
    if not budget:
        return ["none: the config as it is (--budget full)"]
    return [f"{section}.{key}: {value}" for section, values in budget.items()
            for key, value in values.items()]


def _verification_table(summary, prefix, metric):
    reference = summary["reference"]
    header = ["row", "seeds"] + [f"{c}" for c in CONDITIONS] + [
        f"Δ {c} [95 % CI]" for c in CONDITIONS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary["rows"]:
        cells = [row["row"], str(len(row["seeds"]))]
        stats = [row["metrics"].get(f"{prefix}{c}/{metric}") for c in CONDITIONS]
        cells += ["n/a" if m is None else f"{_fmt(m['mean'])} ± {_fmt(m['std'])}"
                  for m in stats]
        for m in stats:
            if row["row"] == reference:
                cells.append("(reference)")
            elif m is None:
                cells.append("n/a")
            else:
                d = m["vs_reference"]
                cells.append(f"{_signed(d['diff'])} [{_signed(d['low'])}, {_signed(d['high'])}]")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _attribute_table(summary, condition, names):
    header = ["row", "attribute", "base", "acc.", "bal. acc.", "bal. acc. 95 % interval",
              "Δ bal. acc. [95 % CI]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary["rows"]:
        for name in names:
            def mean(field, row=row, name=name):
                m = row["metrics"].get(f"{condition}/{name}.{field}")
                return math.nan if m is None else m["mean"]

            balanced = row["metrics"].get(f"{condition}/{name}.balanced_accuracy")
            if row["row"] == summary["reference"] or balanced is None:
                delta = "(reference)" if balanced is not None else "n/a"
            else:
                d = balanced["vs_reference"]
                delta = f"{_signed(d['diff'])} [{_signed(d['low'])}, {_signed(d['high'])}]"
            cells = [row["row"], name, _fmt(mean("majority_rate")), _fmt(mean("accuracy")),
                     _fmt(mean("balanced_accuracy")),
                     f"[{_fmt(mean('balanced_low'))}, {_fmt(mean('balanced_high'))}]", delta]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _markdown(summary):
    lines = [
        f"# Ablation: {summary['table']}",
        "",
        summary["caption"],
        "",
        "Budget overrides (`--budget`; they replace the config's values in every row):",
        "",
        *[f"- {line}" for line in budget_lines(summary.get("budget"))],
        "",
        f"Mean ± std over seeds; Δ is the paired difference to the row "
        f"{summary['reference']!r} (same seed) with its 95 % t-interval. Conditions: clean "
        "(both images as given), degraded (both degraded at the model's input size), mixed "
        "(one clean, one degraded).",
        "",
    ]
    keys = _metric_keys(summary.get("records", [])) or [
        f"{c}/{m}" for c in CONDITIONS for m in DEFAULT_METRICS]
    keys = [key for key in keys if any(key in row["metrics"] for row in summary["rows"])]
    for place, prefix in (("held-out identities", ""), ("the pairs file", PAIRS_PREFIX)):
        metrics = list(dict.fromkeys(
            _split(key)[2] for key in keys
            if key.startswith(prefix) and (prefix or not key.startswith(PAIRS_PREFIX))
            and "." not in _split(key)[2]))
        for metric in metrics:
            lines += [f"## {METRIC_TITLES.get(metric, metric)}, {place}", ""]
            lines += _verification_table(summary, prefix, metric)
            lines.append("")
    attribute_keys = [key for key in keys if "." in _split(key)[2]]
    for condition in dict.fromkeys(_split(key)[1] for key in attribute_keys):
        names = list(dict.fromkeys(_split(key)[2].split(".")[0] for key in attribute_keys
                                   if _split(key)[1] == condition))
        lines += [f"## Attributes, held-out identities, {condition}", ""]
        lines += _attribute_table(summary, condition, names)
        lines += ["", "base: share of the majority class (a constant predictor's accuracy); "
                  "bal. acc.: balanced accuracy, 0.5 for any constant answer; its 95 % interval "
                  "is each seed's (the mean of the per-class Wilson bounds) averaged over "
                  "seeds.", ""]
    lines += ["## Time and precision", "",
              f"| row | s / seed | seeds for a Δ degraded TAR interval {PRECISION_WIDTH} wide |"
              f" genuine pairs for a degraded TAR interval {PRECISION_WIDTH} wide |",
              "|---|---|---|---|"]
    for row in summary["rows"]:
        tar = row["metrics"].get(f"degraded/{PRIMARY}")
        seeds = None if tar is None or row["row"] == summary["reference"] else seeds_for_width(
            tar["vs_reference"].get("std", math.nan), PRECISION_WIDTH)
        pairs = (None if tar is None or not math.isfinite(tar["mean"])
                 else pairs_for_width(min(max(tar["mean"], 0.0), 1.0), PRECISION_WIDTH))
        lines.append(f"| {row['row']} | {_fmt(row['wall_seconds']['mean'], 0)} | "
                     f"{'n/a' if seeds is None else seeds} | {'n/a' if pairs is None else pairs} |")
    lines += ["", "s / seed: the wall time of the row's own runs (stage-2 rows exclude their "
              "shared stage-1 model). Seeds: from the spread of the row's paired differences "
              "over the seeds run (n/a for the reference or with one seed); genuine pairs: "
              "the binomial spread of the mean TAR alone (the impostor-set threshold adds "
              "more)."]
    return "\n".join(lines) + "\n"


def _csv(summary):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "evaluated_on", "condition", "metric", "n", "mean", "std",
                     "diff_vs_reference", "ci_low", "ci_high", "wall_seconds_mean"])
    for row in summary["rows"]:
        for key, m in row["metrics"].items():
            place, condition, metric = _split(key)
            d = m["vs_reference"]
            writer.writerow([row["row"], place, condition, metric, m["n"], m["mean"], m["std"],
                             d["diff"], d["low"], d["high"], row["wall_seconds"]["mean"]])
    return buffer.getvalue()


def _plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["row"] for row in summary["rows"]]
    positions = range(len(names))
    figure, (left, right) = plt.subplots(1, 2, figsize=(4 + 1.2 * len(names), 4))
    for offset, condition in zip((-0.25, 0.0, 0.25), CONDITIONS):
        stats = [row["metrics"][f"{condition}/{PRIMARY}"] for row in summary["rows"]]
        left.bar([p + offset for p in positions], [s["mean"] for s in stats], width=0.25,
                 yerr=[0 if not math.isfinite(s["std"]) else s["std"] for s in stats],
                 label=condition, capsize=2)
    left.set_title("TAR @ FAR=1e-2 (mean ± std)")
    left.legend(fontsize=7)
    diffs = [row["metrics"][f"degraded/{PRIMARY}"]["vs_reference"] for row in summary["rows"]]
    means = [d["diff"] for d in diffs]
    errors = [[0 if not math.isfinite(d["low"]) else d["diff"] - d["low"] for d in diffs],
              [0 if not math.isfinite(d["high"]) else d["high"] - d["diff"] for d in diffs]]
    right.errorbar(list(positions), means, yerr=errors, fmt="o", capsize=3)
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_title(f"degraded Δ vs {summary['reference']!r} (95 % CI)")
    for axis in (left, right):
        axis.set_xticks(list(positions))
        axis.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100))
    plt.close(figure)


def write_report(table, records, out_dir, budget=None):
    """Writes the four report files into `out_dir`; returns the summary dict.

    Args:
        budget: the overrides of `--budget`, written at the top of table.md.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize_table(table, records, budget)
    summary["records"] = records
    write_text_atomically(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n",
                          out_dir / "results.json")
    write_text_atomically(_markdown(summary), out_dir / "table.md")
    write_text_atomically(_csv(summary), out_dir / "table.csv")
    _plot(summary, out_dir / "plot.png")
    return summary
