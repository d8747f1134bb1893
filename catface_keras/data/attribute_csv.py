"""Attribute label files: a CSV `key,attr1,attr2,...` with values 1, 0 or -1 (unknown).

The key column is `path` for image folders (one row per image, the path
relative to the root) and `identity` for RecordIO datasets (one row per
class, e.g. MS1MV2's gender). Values follow the project's label convention
(`catface_keras.soft_biometrics.MISSING_LABEL`): 1 positive, 0 negative,
-1 unknown, which the SB loss masks out.
"""

import csv

import numpy as np

from catface_keras.soft_biometrics import MISSING_LABEL

_VALUES = {"1": 1, "0": 0, str(MISSING_LABEL): MISSING_LABEL}


def read_attribute_csv(path, key_column, attribute_names):
    """Reads the rows of an attribute CSV.

    Args:
        path: the CSV file; its first line is the header.
        key_column: the name of the column that identifies a row.
        attribute_names: the columns to read, in this order; other columns
            are ignored.

    Returns:
        A dict `key -> (line number, (A,) int32 in {-1, 0, 1})`.

    Raises:
        ValueError: naming the file and line, for a header without
            `key_column` or without an attribute, a row with the wrong number
            of fields, a value other than 1, 0 or -1, or a repeated key.
    """
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as error:
        raise ValueError(f"Cannot read attribute CSV {path}: {error.strerror}") from error
    with handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if key_column not in header:
            raise ValueError(
                f"{path}:1: the header must have a `{key_column}` column. Received: {header}"
            )
        missing = [name for name in attribute_names if name not in header]
        if missing:
            raise ValueError(
                f"{path}:1: no column for attribute(s) {missing}. Columns: {header}"
            )
        key_index = header.index(key_column)
        columns = [header.index(name) for name in attribute_names]
        rows = {}
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise ValueError(
                    f"{path}:{line}: expected {len(header)} fields like the header, "
                    f"found {len(fields)}"
                )
            key = fields[key_index].strip()
            values = np.empty(len(columns), np.int32)
            for position, column in enumerate(columns):
                text = fields[column].strip()
                if text not in _VALUES:
                    raise ValueError(
                        f"{path}:{line}: `{header[column]}` must be 1, 0 or -1 (unknown). "
                        f"Received: {text!r}"
                    )
                values[position] = _VALUES[text]
            if key in rows:
                raise ValueError(
                    f"{path}:{line}: {key_column} {key!r} is also on line {rows[key][0]}"
                )
            rows[key] = (line, values)
    return rows
