"""The comparison table of `catface benchmark`: one row per model, the paper's columns.

Cells are fractions in [0, 1]; `table.md` and `table.csv` print them as
percentages with two decimals, and leave a cell empty when its benchmark's
data was not there. Keys a benchmark returns beyond the columns (e.g.
`tinyface_r20`, IJB 1:N ranks) are kept in `results.json` only.
"""

import csv
import io
import json
import pathlib

import numpy as np

from catface_keras.atomic_files import write_text_atomically
from catface_keras.evaluation.run import json_safe

# (key, header) in the paper's order.
COLUMNS = (
    ("lfw", "LFW"),
    ("cfp_fp", "CFP-FP"),
    ("cplfw", "CPLFW"),
    ("agedb_30", "AgeDB"),
    ("calfw", "CALFW"),
    ("ijbb", "IJB-B"),
    ("ijbc", "IJB-C"),
    ("tinyface_r1", "TinyFace R1"),
    ("tinyface_r5", "TinyFace R5"),
    ("scface_d1", "SCFace d1 R1"),
    ("scface_d2", "SCFace d2 R1"),
    ("scface_d3", "SCFace d3 R1"),
)
IJB_HEADER_NOTE = "IJB-B and IJB-C: TAR at FAR = 1e-4."


def write_json(path, value):
    write_text_atomically(json.dumps(json_safe(value), indent=2) + "\n", path)


def format_cell(value):
    """A fraction as a percentage with two decimals; '' for a missing value."""
    if value is None or isinstance(value, str):
        return ""
    value = float(value)
    return "" if not np.isfinite(value) else f"{100 * value:.2f}"


def table_rows(cells_by_model):
    """`[[model, cell, ...], ...]` in column order from `{model: {key: fraction}}`."""
    return [[model] + [format_cell(cells.get(key)) for key, _ in COLUMNS]
            for model, cells in cells_by_model.items()]


def format_markdown_table(cells_by_model, notes=()):
    header = ["Model"] + [title for _, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(cells_by_model)]
    notes = ["Percent; an empty cell: the benchmark's data was not found or not run. "
             + IJB_HEADER_NOTE, *notes]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def format_csv_table(cells_by_model):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model"] + [key for key, _ in COLUMNS])
    writer.writerows(table_rows(cells_by_model))
    return buffer.getvalue()


def write_tables(out, cells_by_model, notes=()):
    """Writes `table.md` and `table.csv` into `out`; returns their paths."""
    out = pathlib.Path(out)
    write_text_atomically(format_markdown_table(cells_by_model, notes), out / "table.md")
    write_text_atomically(format_csv_table(cells_by_model), out / "table.csv")
    return out / "table.md", out / "table.csv"
