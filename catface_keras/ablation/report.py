"""Writing an ablation table: table.md, table.csv, results.json and plot.png."""

import csv
import io
import json
import math
import pathlib

from catface_keras.ablation.metrics import CONDITION_LABELS, CONDITIONS, DEFAULT_METRICS
from catface_keras.ablation.stats import paired_interval, summarize
from catface_keras.atomic_files import write_atomically, write_text_atomically

PRIMARY = "tar_at_far_1e-2"


def summarize_table(table, records):
    """Per row: per metric mean/std over seeds and the paired difference to the reference."""
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
        for condition in CONDITIONS:
            for metric in DEFAULT_METRICS:
                key = f"{condition}/{metric}"
                values = {s: r["metrics"][key] for s, r in seeds.items()}
                ref = {s: r["metrics"][key] for s, r in reference.items()}
                entry["metrics"][key] = {
                    **summarize(values.values()),
                    "per_seed": values,
                    "vs_reference": paired_interval(values, ref),
                }
        rows.append(entry)
    return {"table": table.name, "caption": table.caption, "reference": table.reference,
            "rows": rows}


def _fmt(value, digits=3):
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _signed(value):
    return "n/a" if not math.isfinite(value) else f"{value:+.3f}"


def _markdown(summary):
    lines = [
        f"# Ablation: {summary['table']}",
        "",
        summary["caption"],
        f"TAR at FAR = 1e-2 on held-out identities, mean ± std over seeds; Δ is the paired "
        f"difference to the row {summary['reference']!r} (same seed) with its 95 % t-interval; "
        "acc is 10-fold verification accuracy (insightface's protocol); s / seed is the wall "
        "time of the row's own runs (stage-2 rows exclude their shared stage-1 model).",
        "",
    ]
    header = ["row", "seeds"]
    header += [f"{CONDITION_LABELS[c]} TAR" for c in CONDITIONS]
    header += [f"Δ {CONDITION_LABELS[c]} [95 % CI]" for c in ("degraded", "mixed")]
    header += ["LQ-LQ acc", "Δ LQ-LQ acc [95 % CI]", "s / seed"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary["rows"]:
        metrics = row["metrics"]
        cells = [row["row"], str(len(row["seeds"]))]
        for condition in CONDITIONS:
            m = metrics[f"{condition}/{PRIMARY}"]
            cells.append(f"{_fmt(m['mean'])} ± {_fmt(m['std'])}")
        for condition in ("degraded", "mixed"):
            d = metrics[f"{condition}/{PRIMARY}"]["vs_reference"]
            if row["row"] == summary["reference"]:
                cells.append("(reference)")
            else:
                cells.append(f"{_signed(d['diff'])} [{_signed(d['low'])}, {_signed(d['high'])}]")
        acc = metrics["degraded/accuracy"]
        cells.append(f"{_fmt(acc['mean'])} ± {_fmt(acc['std'])}")
        d = acc["vs_reference"]
        cells.append(
            "(reference)" if row["row"] == summary["reference"]
            else f"{_signed(d['diff'])} [{_signed(d['low'])}, {_signed(d['high'])}]"
        )
        cells.append(_fmt(row["wall_seconds"]["mean"], 0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(summary):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "condition", "metric", "n", "mean", "std", "diff_vs_reference",
                     "ci_low", "ci_high", "wall_seconds_mean"])
    for row in summary["rows"]:
        for key, m in row["metrics"].items():
            condition, metric = key.split("/")
            d = m["vs_reference"]
            writer.writerow([row["row"], condition, metric, m["n"], m["mean"], m["std"],
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
                 label=CONDITION_LABELS[condition], capsize=2)
    left.set_title("TAR @ FAR=1e-2 (mean ± std)")
    left.legend(fontsize=7)
    diffs = [row["metrics"][f"degraded/{PRIMARY}"]["vs_reference"] for row in summary["rows"]]
    means = [d["diff"] for d in diffs]
    errors = [[0 if not math.isfinite(d["low"]) else d["diff"] - d["low"] for d in diffs],
              [0 if not math.isfinite(d["high"]) else d["high"] - d["diff"] for d in diffs]]
    right.errorbar(list(positions), means, yerr=errors, fmt="o", capsize=3)
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_title(f"LQ-LQ Δ vs {summary['reference']!r} (95 % CI)")
    for axis in (left, right):
        axis.set_xticks(list(positions))
        axis.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100))
    plt.close(figure)


def write_report(table, records, out_dir):
    """Writes the four report files into `out_dir`; returns the summary dict."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize_table(table, records)
    summary["records"] = records
    write_text_atomically(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n",
                          out_dir / "results.json")
    write_text_atomically(_markdown(summary), out_dir / "table.md")
    write_text_atomically(_csv(summary), out_dir / "table.csv")
    _plot(summary, out_dir / "plot.png")
    return summary
