"""Your own data: a CSV or Parquet file, or a folder of shards, batched.

Problems in the files are found before any training and named by file, row
and column. CSV rows count as a spreadsheet shows them (the header is row
1); Parquet has no header, so its records count from 1.
"""

import dataclasses
import os
import re

import numpy as np
import pandas as pd

from tfkd.datasets import splits
from tfkd.datasets.feature_spec import Feature
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.movielens_data import MovieLensData

TASKS = ("ctr", "rating")
LABEL_KIND_BY_TASK = {"ctr": "binary", "rating": "rating"}
FORMATS = {".csv": "csv", ".parquet": "parquet"}
ROW_WORD = {"csv": "row", "parquet": "record"}
# The header is row 1 of a CSV file, so data row i (from 0) is row i + 2.
CSV_FIRST_DATA_ROW = 2
# An integer column with larger values would need a table of that many
# rows: more likely a count or an amount than an id.
MAX_INFERRED_VOCABULARY = 1_000_000
INT32_MAX = np.iinfo(np.int32).max
ID_RULE = (
    "ids must be >= 1, since tfkd models keep id 0 for unknown ids. Add 1 "
    "to the column's ids (here and in the requests your app sends), or "
    "make it numeric in a spec"
)


@dataclasses.dataclass
class _Table:
    """The parsed files: numbers, and where each row came from."""

    frame: pd.DataFrame
    integer: dict  # column -> holds only integers, in every shard
    shards: list  # "path row" or "path record", one per shard
    shard_of_row: np.ndarray
    rows: np.ndarray  # of each frame row, in its file

    def where(self, i):
        return f"{self.shards[self.shard_of_row[i]]} {self.rows[i]}"


def from_files(
    path,
    label=None,
    spec=None,
    task=None,
    seed=42,
    batch_size=256,
    val_fraction=0.1,
    test_fraction=0.1,
):
    """Loads a CSV or Parquet file, or a folder of shards, as datasets.

    Without `spec`, every other column than the label is a feature: integers
    are a categorical id feature (vocabulary size = largest id + 1), other
    numbers a numeric feature (standardised with the column's mean and
    standard deviation). With `spec`, only its features and label are read.
    `data.spec.to_dict()` written as JSON is a spec to edit (e.g. `"kind":
    "numeric"` for an integer quantity) and read back with
    `FeatureSpec.from_dict`. The rows are split at random (seeded).

    Ids must be >= 1: tfkd models keep id 0 for unknown ids (those an app
    sends that training never saw), so files whose ids start at 0 are
    refused with the fix (add 1, in the files and in the app's requests).
    With a `spec`, ids above its vocabulary are read as unknown, as the
    exported model reads them.

    Args:
        path: str or path-like. A `.csv` or `.parquet` file, or a folder of
            `*.csv` or `*.parquet` shards (read in name order; one format).
            Parquet needs `pyarrow`.
        label: str or None. The label column. Defaults to `spec.label`.
        spec: `FeatureSpec` or None. The features to read; inferred from
            the files when None. Defaults to `None`.
        task: str or None. `"ctr"` (labels 0 or 1) or `"rating"` (any
            finite number). Defaults to `spec.task`, else `"ctr"`.
        seed: int. Seed of the split and of the train shuffle. Defaults to
            `42`.
        batch_size: int. Defaults to `256`.
        val_fraction: float. Share of rows in val. Defaults to `0.1`.
        test_fraction: float. Share of rows in test. Defaults to `0.1`.

    Returns:
        `MovieLensData` with `train`, `val`, `test`, `frames` and `spec`;
        `users` and `items` are empty frames.

    Raises:
        FileNotFoundError: if `path` does not exist or holds no shards.
        ValueError: on a problem in the files, named by file, row and
            column: a row that does not parse, an empty cell, text, a
            missing label column (the message lists the columns), a NaN
            or out-of-range label, an id below 1.
        ImportError: for Parquet files without `pyarrow`.

    Example:

    ```python
    data = tfkd.datasets.from_files("clicks.csv", label="clicked")
    student = tfkd.models.student(data.spec)
    ```
    """
    label, task = _resolve_label_and_task(label, spec, task)
    splits.validate_fractions(val_fraction, test_fraction)
    wanted = None if spec is None else [*spec.names, label]
    table = _read_all(_shards(path), label, wanted)
    if table.frame.empty:
        raise ValueError(f"{os.fspath(path)} holds no data rows.")
    _check_label(table, label, task)
    kinds = _feature_kinds(table, label, spec)
    _check_features(table, kinds)
    spec = spec or _infer_spec(table, kinds, label, task)
    frames = splits.random_split(
        _encode(table.frame, spec), val_fraction, test_fraction, seed
    )
    return MovieLensData.from_frames(frames, spec, pd.DataFrame(),
                                     pd.DataFrame(), batch_size, seed)


def _resolve_label_and_task(label, spec, task):
    if spec is not None and not isinstance(spec, FeatureSpec):
        raise TypeError(
            "`spec` must be a tfkd.datasets.FeatureSpec (see "
            f"FeatureSpec.from_dict) or None. Received: {type(spec)}"
        )
    given = {"label": label, "task": task}
    for name, own in ({} if spec is None else vars(spec)).items():
        if given.get(name) not in (None, own):
            raise ValueError(
                f"`{name}` and the spec's {name} differ. Received: "
                f"{name}={given[name]!r}, spec {name}={own!r}"
            )
    label = spec.label if spec else label
    task = spec.task if spec else task or "ctr"
    if not isinstance(label, str) or not label:
        raise TypeError(f"`label` must name a column. Received: {label!r}")
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: {task!r}")
    return label, task


def _shards(path):
    """Returns `[(path, format)]`: the file, or the folder's shards."""
    path = os.fspath(path)
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(path, name) for name in sorted(os.listdir(path))
                 if _format(name)]
    if not paths or not os.path.exists(path):
        raise FileNotFoundError(
            f"No .csv or .parquet file at {path}, nor a folder of them."
        )
    formats = {_format(p) for p in paths}
    if None in formats or len(formats) > 1:
        raise ValueError(
            "Expected a .csv or .parquet file, or a folder of shards all of "
            f"one format. Received: {[os.path.basename(p) for p in paths]}"
        )
    return [(p, _format(p)) for p in paths]


def _format(path):
    return FORMATS.get(os.path.splitext(path)[1].lower())


def _read_all(shards, label, wanted):
    frames, rows, integer = [], [], {}
    for path, fmt in shards:
        frame, shard_rows, flags = _read_shard(path, fmt, label, wanted)
        if frames and sorted(frame) != sorted(frames[0]):
            raise ValueError(
                f"Every shard needs the same columns. {shards[0][0]} has "
                f"{list(frames[0])}; {path} has {list(frame)}"
            )
        frames.append(frame)
        rows.append(shard_rows)
        for name, flag in flags.items():
            integer[name] = integer.get(name, True) and flag
    return _Table(
        frame=pd.concat(frames, ignore_index=True)[list(frames[0])],
        integer=integer,
        shards=[f"{path} {ROW_WORD[fmt]}" for path, fmt in shards],
        shard_of_row=np.repeat(np.arange(len(rows)), [len(r) for r in rows]),
        rows=np.concatenate(rows),
    )


def _read_shard(path, fmt, label, wanted):
    """Returns `(numeric frame, row numbers, {column: holds integers})`."""
    read = _read_csv if fmt == "csv" else _read_parquet
    raw, rows = read(path)
    _check_columns(path, list(raw.columns), label, wanted)
    if wanted is not None:
        raw = raw[wanted]
    parse = _parse_csv_column if fmt == "csv" else _parse_parquet_column
    columns, integer = {}, {}
    for name in raw.columns:
        columns[name], integer[name] = parse(
            raw[name], lambda i: f"{path} {ROW_WORD[fmt]} {rows[i]}", name
        )
    return pd.DataFrame(columns), rows, integer


def _read_csv(path):
    try:
        # Strings first, so every cell that is not a number can be named.
        raw = pd.read_csv(path, dtype=str, keep_default_na=False,
                          na_filter=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"{path} is empty: expected a header row") from e
    except pd.errors.ParserError as e:
        raise ValueError(_parser_message(path, str(e))) from e
    rows = np.arange(len(raw)) + CSV_FIRST_DATA_ROW
    blank = (raw == "").all(axis=1).to_numpy()
    return raw[~blank].reset_index(drop=True), rows[~blank]


def _parser_message(path, message):
    # pandas counts lines from 1 with the header as line 1, as tfkd does.
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)",
                      message)
    if found is None:
        return f"{path} does not parse as CSV: {' '.join(message.split())}"
    expected, row, saw = found.groups()
    return (f"{path} row {row} has {saw} fields; the header has {expected}. "
            "Fix or remove that row (a comma inside a value needs quotes).")


def _read_parquet(path):
    try:
        raw = pd.read_parquet(path, dtype_backend="numpy_nullable")
    except ImportError as e:
        raise ImportError(
            f"Reading {path} needs pyarrow: `pip install pyarrow`."
        ) from e
    return raw.reset_index(drop=True), np.arange(len(raw)) + 1


def _check_columns(path, columns, label, wanted):
    needed = [label] if wanted is None else wanted
    missing = [name for name in needed if name not in columns]
    if missing:
        what = "label column" if missing == [label] else "columns"
        raise ValueError(
            f"{path} has no {what} {', '.join(map(repr, missing))}. "
            f"Its columns: {', '.join(columns)}"
        )


def _parse_csv_column(text, where, name):
    stripped = text.str.strip()
    values = pd.to_numeric(stripped, errors="coerce")
    # "nan" parses (to NaN) and is reported with the other NaN checks.
    bad = (values.isna() & (stripped.str.lower() != "nan")).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        cell = stripped.iloc[i]
        if bad.all() and cell:
            raise ValueError(_text_column_message(name, where(i), cell))
        problem = "is empty" if cell == "" else f"is not a number: {cell!r}"
        raise ValueError(f"{where(i)}, column '{name}' {problem}{_more(bad)}")
    return values.to_numpy(), values.dtype.kind in "iu"


def _parse_parquet_column(column, where, name):
    if not (pd.api.types.is_numeric_dtype(column)
            or pd.api.types.is_bool_dtype(column)):
        raise ValueError(_text_column_message(name, where(0), column.iloc[0]))
    missing = column.isna().to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        raise ValueError(
            f"{where(i)}, column '{name}' is empty (null){_more(missing)}"
        )
    integer = not pd.api.types.is_float_dtype(column)
    return column.to_numpy("int64" if integer else "float64"), integer


def _text_column_message(name, where, value):
    return (
        f"Column '{name}' holds text ({where}: {value!r}); tfkd reads "
        "integer ids and numbers. Encode it as integer ids from 1, drop "
        "it from the files, or pass a spec that leaves it out."
    )


def _more(bad):
    extra = int(np.count_nonzero(bad)) - 1
    return f" (and {extra} more rows)" if extra else ""


def _check_label(table, label, task):
    values = table.frame[label].to_numpy(np.float64)
    where = f"column '{label}' (the label)"
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{table.where(i)}, {where} is {values[i]}{_more(bad)}: every "
            "row needs a finite label; drop or fill those rows."
        )
    if task != "ctr":
        return
    bad = (values != 0) & (values != 1)
    hint = "the ctr task needs labels 0 or 1."
    if bad.any() and values.min() >= 0:
        hint = (f"the labels run from {values.min():g} to {values.max():g}: "
                "they look like ratings; pass task='rating' (--task "
                "rating), or map them to 0/1.")
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{table.where(i)}, {where} is {values[i]:g}{_more(bad)}: {hint}"
        )


def _feature_kinds(table, label, spec):
    """`{column: kind}`: the spec's, or integer columns categorical."""
    if spec is None:
        return {
            name: "categorical" if table.integer[name] else "numeric"
            for name in table.frame.columns
            if name != label
        }
    lists = [f.name for f in spec.features if f.is_list]
    if lists:
        raise ValueError(
            "A file column holds one value per row: give every feature of "
            f"the spec length 1. Received: lists {lists}"
        )
    return {feature.name: feature.kind for feature in spec.features}


def _check_features(table, kinds):
    for name, kind in kinds.items():
        values = table.frame[name].to_numpy(np.float64)
        finite = np.isfinite(values)
        checks = [(~finite, "every row needs a finite number")]
        if kind == "categorical":
            checks += [
                (finite & (values != np.floor(values)),
                 "an id column needs whole numbers (make it numeric in a "
                 "spec if it is a quantity)"),
                (values < 1, ID_RULE),
            ]
        for bad, rule in checks:
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"{table.where(i)}, column '{name}' holds "
                    f"{values[i]:g}{_more(bad)}: {rule}."
                )


def _infer_spec(table, kinds, label, task):
    features = []
    for name, kind in kinds.items():
        values = table.frame[name].to_numpy(np.float64)
        if kind == "numeric":
            std = float(np.std(values))
            features.append(Feature(
                name, kind="numeric", mean=float(np.mean(values)),
                std=std if std > 0 else 1.0,
            ))
            continue
        top = int(values.max())
        if top + 1 > MAX_INFERRED_VOCABULARY:
            raise ValueError(
                f"{table.where(int(np.argmax(values)))}, column '{name}' "
                f"holds id {top}: as an id feature that is a table of "
                f"{top + 1:,} rows (at most {MAX_INFERRED_VOCABULARY:,}). "
                "If it is a quantity, make it numeric in a spec; if ids, "
                "number them densely from 1."
            )
        features.append(Feature(name, top + 1))
    return FeatureSpec(tuple(features), task, label, LABEL_KIND_BY_TASK[task])


def _encode(frame, spec):
    """Model-ready columns: int32 ids, float32 numbers and label."""
    encoded = {}
    for feature in spec.features:
        values = frame[feature.name].to_numpy(np.float64)
        # Ids past int32 stay out of range (read as unknown), rather than
        # wrapping round onto a real id.
        encoded[feature.name] = (
            values.astype(np.float32) if feature.is_numeric
            else np.minimum(values, INT32_MAX).astype(np.int32)
        )
    encoded[spec.label] = frame[spec.label].to_numpy(np.float32)
    return pd.DataFrame(encoded)
