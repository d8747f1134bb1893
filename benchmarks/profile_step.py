"""Where the stage-1 step's time goes: a TF profiler trace, summarised per op type.

Builds the `run.py` stage-1 step, warms it up, traces `--steps` steps with
`tf.profiler`, and prints the host ops by self time (the TensorBoard
"framework op stats" table, grouped by op type), top `--top`. The trace stays
in `--logdir` for TensorBoard's profile plugin.

    python benchmarks/profile_step.py --logdir /tmp/catface_profile
    python benchmarks/profile_step.py --policy float32 --top 25
"""

import argparse
import collections
import glob
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logdir", default="/tmp/catface_profile")
    parser.add_argument("--backbone", default="ir_18")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--policy", default="auto")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the table here")
    return parser.parse_args(argv)


def op_table(logdir):
    """Rows `(op_type, self_time_us, occurrences)` from the newest trace in `logdir`."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    paths = sorted(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")),
                   key=os.path.getmtime)
    data, _ = plugin.xspace_to_tools_data([paths[-1]], "framework_op_stats", {})
    table = json.loads(data)
    # Google-charts DataTables: the first with IDLE time, the second the same ops
    # without it; only the first is read.
    tables = table[:1] if isinstance(table, list) else [table]
    totals = collections.defaultdict(lambda: [0.0, 0])
    for chart in tables:
        columns = [column["id"] for column in chart.get("cols", [])]
        if "type" not in columns:
            continue
        for row in chart.get("rows", []):
            values = dict(zip(columns, (cell.get("v") if cell else None for cell in row["c"])))
            if values.get("host_or_device") not in (None, "Host", "Device"):
                continue
            entry = totals[values["type"]]
            entry[0] += float(values.get("total_self_time") or 0.0)
            entry[1] += int(values.get("occurrences") or 0)
    return sorted(((k, v[0], v[1]) for k, v in totals.items()), key=lambda r: -r[1])


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import keras
    import tensorflow as tf

    import train_step
    from catface_keras.precision import choose_dtype_policy

    policy = choose_dtype_policy(args.policy) or "float32"
    keras.config.set_dtype_policy(policy)
    step, _, _ = train_step.stage1_step(args.backbone, args.image_size, args.pairs, args.classes)
    step()
    step()
    tf.profiler.experimental.start(args.logdir)
    for _ in range(args.steps):
        step()
    tf.profiler.experimental.stop()
    rows = op_table(args.logdir)
    total = sum(row[1] for row in rows) or 1.0
    print(f"policy {policy}; {args.steps} steps; self time per op type (host)")
    print(f"{'op type':32s} {'ms/step':>9s} {'share':>6s} {'calls/step':>10s}")
    for name, self_us, count in rows[: args.top]:
        print(f"{name:32s} {self_us / 1000 / args.steps:9.1f} {self_us / total:6.1%} "
              f"{count / args.steps:10.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"policy": policy, "steps": args.steps, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
