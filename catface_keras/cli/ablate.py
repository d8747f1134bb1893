"""`catface ablate --table NAME --config FILE --seeds N --out DIR`: an ablation table."""

import pathlib
import sys

from catface_keras.ablation.budgets import MAX_SEEDS
from catface_keras.cli.arguments import (
    add_pairs_file_arguments,
    checked_pairs_file,
    output_directory,
)
from catface_keras.config import ConfigError, load_config

TABLE_NAMES = ("distillation", "fusion", "attributes", "catf-parts", "distillation-weight")
BUDGET_NAMES = ("tiny", "small", "full")


def register(subparsers):
    parser = subparsers.add_parser(
        "ablate",
        help="train the rows of one of the paper's ablation tables over seeds",
        description="Train every row of an ablation table with the same data, budget and seeds, "
        "and write table.md, table.csv, results.json and plot.png to --out: mean and std over "
        "seeds, and each row's paired difference to the table's reference row with a 95 % "
        "interval. Run again with the same --out, finished rows are kept, not retrained.",
    )
    parser.add_argument("--table", required=True, choices=TABLE_NAMES)
    parser.add_argument("--config", required=True, type=pathlib.Path, help="YAML config file")
    parser.add_argument("--seeds", type=int, default=3,
                        help=f"seeds per row, at most {MAX_SEEDS} (default: 3)")
    parser.add_argument("--out", required=True, type=output_directory, help="output directory")
    parser.add_argument(
        "--budget", choices=BUDGET_NAMES, default="small",
        help="tiny: a smoke run of minutes on a CPU; small: reduced data and epochs; "
        "full: the config as it is (default: small). tiny and small replace the config's "
        "epochs, batch size, learning-rate milestones and pair count (and the synthetic "
        "faces' sizes); the replaced values are printed and written at the top of table.md",
    )
    parser.add_argument(
        "--rows", default=None, metavar="NAME,...",
        help="train only these rows (names or slugs, comma-separated, e.g. 'none,SA cosine'); "
        "rows finished before by another call still appear in the table",
    )
    add_pairs_file_arguments(parser, "--pairs-file", "--pairs-root",
                             "also score every row's model on these pairs")
    parser.add_argument(
        "--report-only", action="store_true",
        help="write the table from the rows finished so far, training nothing",
    )
    parser.set_defaults(run=run)


def run(args):
    program = "catface ablate"
    if not 1 <= args.seeds <= MAX_SEEDS:
        print(f"{program}: error: --seeds must be in [1, {MAX_SEEDS}]. Received: {args.seeds}",
              file=sys.stderr)
        return 2
    if args.report_only and not (args.out / "results").is_dir():
        # Checked before TensorFlow loads: there is nothing to report from.
        print(f"{program}: error: --report-only: {args.out} holds no finished rows "
              "(no results/ folder); run without --report-only to train them", file=sys.stderr)
        return 2
    try:
        pairs = checked_pairs_file(args.pairs_file, args.pairs_root, "--pairs-file",
                                   "--pairs-root")
    except ValueError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    rows = None
    if args.rows is not None:
        rows = [name.strip() for name in args.rows.split(",") if name.strip()]
    try:
        config = load_config(args.config)
        if rows is not None:
            from catface_keras.ablation.tables import TABLES, select_rows

            select_rows(TABLES[args.table], rows)  # before TensorFlow trains anything
    except (ConfigError, ValueError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    from catface_keras.ablation.runner import run_table

    try:
        run_table(args.table, config, args.seeds, args.out, args.budget,
                  progress=lambda line: print(line, flush=True), train=not args.report_only,
                  rows=rows, pairs=pairs)
    except ValueError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print((args.out / "table.md").read_text())
    return 0
