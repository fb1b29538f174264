"""Finding and parsing the user's CSV / Parquet shards, whole or in chunks.

Shared by `from_files` (one chunk per shard) and `stream_files` (bounded
chunks). CSV rows count as a spreadsheet shows them (the header is row 1);
Parquet has no header, so its records count from 1.
"""

import os
import re

import numpy as np
import pandas as pd

from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.row_tallies import more_rows
from tfkd.datasets.vocabulary import split_cell

TASKS = ("ctr", "rating")
FORMATS = {".csv": "csv", ".parquet": "parquet"}
ROW_WORD = {"csv": "row", "parquet": "record"}
# The header is row 1 of a CSV file, so data row i (from 0) is row i + 2.
CSV_FIRST_DATA_ROW = 2


def resolve_label_and_task(label, spec, task):
    """Returns `(label, task)`, from the arguments or the spec.

    Raises:
        TypeError: if `spec` is not a `FeatureSpec` or `label` no column.
        ValueError: if `label` or `task` differ from the spec's, or the
            task is unknown.
    """
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


def find_shards(path):
    """Returns `[(path, format)]`: the file, or the folder's shards.

    Raises:
        FileNotFoundError: if `path` does not exist or holds no shards.
        ValueError: if the files are not all `.csv` or all `.parquet`.
    """
    path = os.fspath(path)
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(path, name) for name in sorted(os.listdir(path))
                 if file_format(name)]
    if not paths or not os.path.exists(path):
        raise FileNotFoundError(
            f"No .csv or .parquet file at {path}, nor a folder of them."
        )
    formats = {file_format(p) for p in paths}
    if None in formats or len(formats) > 1:
        raise ValueError(
            "Expected a .csv or .parquet file, or a folder of shards all of "
            f"one format. Received: {[os.path.basename(p) for p in paths]}"
        )
    return [(p, file_format(p)) for p in paths]


def file_format(path):
    """`"csv"`, `"parquet"` or None, from the file name's extension."""
    return FORMATS.get(os.path.splitext(path)[1].lower())


def check_columns(path, columns, label, wanted):
    """Raises unless `columns` hold the label (and the `wanted` columns)."""
    needed = [label] if wanted is None else wanted
    missing = [name for name in needed if name not in columns]
    if missing:
        what = "label column" if missing == [label] else "columns"
        raise ValueError(
            f"{path} has no {what} {', '.join(map(repr, missing))}. "
            f"Its columns: {', '.join(columns)}"
        )


def read_chunks(path, fmt, label, wanted, chunk_rows=None, separators=None):
    """Yields the shard's rows, `chunk_rows` at a time.

    Args:
        path: str. One shard.
        fmt: str. `"csv"` or `"parquet"`.
        label: str. The label column, which must be there.
        wanted: list of str or None. The columns to keep; None keeps all.
        chunk_rows: int or None. Rows per chunk; None reads the whole
            shard as one chunk.
        separators: dict or None. `{column: separator}` of list columns.

    Yields:
        `(frame, rows, kinds)`: a DataFrame, each row's number in its
        file, and `{column: kind}`. A column of kind `"integer"` holds
        int64, `"float"` float64 (every cell a number), `"text"` objects:
        cells that are not all numbers, or have gaps (str, int or None);
        `"list"` a list of values per row (a list column).
        At least one chunk (empty for a shard without data rows).

    Raises:
        ValueError: naming the file, row and column of a label cell that
            is not a number, or the missing columns.
    """
    read = _csv_chunks if fmt == "csv" else _parquet_chunks
    for raw, rows in read(path, chunk_rows):
        check_columns(path, list(raw.columns), label, wanted)
        if wanted is not None:
            raw = raw[wanted]
        yield parse_frame(
            raw, lambda i, rows=rows: f"{path} {ROW_WORD[fmt]} {rows[i]}",
            label, text_cells=fmt == "csv", separators=separators,
        ) + (rows,)


def parse_frame(raw, where, label, text_cells, separators=None):
    """Returns `(frame, kinds)`: each column as numbers, text or lists.

    Args:
        raw: pandas DataFrame as read.
        where: callable. Row `i` -> `"path row N"`.
        label: str. This column must be numbers.
        text_cells: bool. Whether every cell is a str to parse (CSV).
        separators: dict or None. `{column: separator}` of list columns.
    """
    parse = _parse_text_column if text_cells else _parse_typed_column
    separators = separators or {}
    columns, kinds = {}, {}
    for name in raw.columns:
        if name in separators:
            cells = [split_cell(v, separators[name]) for v in raw[name]]
            columns[name] = pd.Series(cells, dtype=object).to_numpy()
            kinds[name] = "list"
            continue
        columns[name], kinds[name] = parse(raw[name])
        if name == label and kinds[name] == "text":
            _refuse_label(raw[name], where, name)
    frame = pd.DataFrame(columns)
    return frame, kinds


def _refuse_label(column, where, name):
    cells = column.map(lambda v: "" if v is None or v is pd.NA
                       else str(v).strip())
    numbers = pd.to_numeric(cells, errors="coerce")
    bad = (numbers.isna() & (cells.str.lower() != "nan")).to_numpy()
    i = int(np.argmax(bad))
    cell = cells.iloc[i]
    if bad.all() and cell:
        raise ValueError(
            f"Column '{name}' (the label) holds text ({where(i)}: "
            f"{cell!r}); the label must be a number: 0/1 for ctr, the "
            "rating for --task rating."
        )
    problem = "is empty" if cell == "" else f"is not a number: {cell!r}"
    raise ValueError(
        f"{where(i)}, column '{name}' (the label) {problem}"
        f"{more_rows(bad)}: every row needs a label; drop or fill those "
        "rows."
    )


def _csv_chunks(path, chunk_rows):
    try:
        # Strings first, so every cell that is not a number can be named.
        reader = pd.read_csv(path, dtype=str, keep_default_na=False,
                             na_filter=False, skip_blank_lines=False,
                             chunksize=chunk_rows or None)
        chunks = [reader] if chunk_rows is None else reader
        for raw in chunks:
            # The reader numbers rows on across chunks.
            rows = raw.index.to_numpy() + CSV_FIRST_DATA_ROW
            blank = (raw == "").all(axis=1).to_numpy()
            yield raw[~blank].reset_index(drop=True), rows[~blank]
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"{path} is empty: expected a header row") from e
    except pd.errors.ParserError as e:
        raise ValueError(_parser_message(path, str(e))) from e


def _parser_message(path, message):
    # pandas counts lines from 1 with the header as line 1, as tfkd does.
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)",
                      message)
    if found is None:
        return f"{path} does not parse as CSV: {' '.join(message.split())}"
    expected, row, saw = found.groups()
    return (f"{path} row {row} has {saw} fields; the header has {expected}. "
            "Fix or remove that row (a comma inside a value needs quotes).")


def _parquet_chunks(path, chunk_rows):
    if chunk_rows is None:
        try:
            raw = pd.read_parquet(path, dtype_backend="numpy_nullable")
        except ImportError as e:
            raise _needs_pyarrow(path) from e
        yield raw.reset_index(drop=True), np.arange(len(raw)) + 1
        return
    parquet_file = open_parquet(path)
    start = 0
    for batch in parquet_file.iter_batches(batch_size=chunk_rows):
        raw = batch.to_pandas(types_mapper=_nullable_dtype)
        yield (raw.reset_index(drop=True),
               np.arange(start, start + len(raw)) + 1)
        start += len(raw)
    if start == 0:
        raw = parquet_file.schema_arrow.empty_table().to_pandas()
        yield raw, np.zeros(0, np.int64)


def open_parquet(path):
    """Returns a `pyarrow.parquet.ParquetFile`, or says to install pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise _needs_pyarrow(path) from e
    return pq.ParquetFile(path)


def _needs_pyarrow(path):
    return ImportError(f"Reading {path} needs pyarrow: `pip install pyarrow`.")


def _nullable_dtype(arrow_type):
    # As pandas' dtype_backend="numpy_nullable", which `from_files` reads
    # with: a null then shows as missing instead of turning ints to floats.
    import pyarrow as pa

    nullable = {
        pa.bool_(): pd.BooleanDtype(),
        pa.float32(): pd.Float32Dtype(),
        pa.float64(): pd.Float64Dtype(),
    }
    for bits in (8, 16, 32, 64):
        for kind in ("int", "uint"):
            arrow = getattr(pa, f"{kind}{bits}")()
            nullable[arrow] = pd.api.types.pandas_dtype(
                f"{kind.capitalize()}{bits}".replace("Uint", "UInt")
            )
    return nullable.get(arrow_type)


def shard_columns(path, fmt):
    """The column names of one shard, read from its header or schema."""
    if fmt == "parquet":
        schema = open_parquet(path).schema_arrow
        # Through pandas, so an index pandas stored is not a column.
        return list(schema.empty_table().to_pandas().columns)
    try:
        return list(pd.read_csv(path, nrows=0, dtype=str).columns)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"{path} is empty: expected a header row") from e


def _parse_text_column(text):
    stripped = text.str.strip()
    values = pd.to_numeric(stripped, errors="coerce")
    # "nan" parses (to NaN) and is reported with the other NaN checks.
    bad = values.isna() & (stripped.str.lower() != "nan")
    if bad.any():
        # Text ids, or numbers with gaps: `RowChecks` tells them apart.
        return stripped.to_numpy(object), "text"
    kind = "integer" if values.dtype.kind in "iu" else "float"
    return values.to_numpy(), kind


def _parse_typed_column(column):
    numeric = (pd.api.types.is_numeric_dtype(column)
               or pd.api.types.is_bool_dtype(column))
    # A null in a nullable column is a gap; NaN in a float64 column is a
    # number, refused by the finite rule as in CSV.
    gaps = (numeric and pd.api.types.is_extension_array_dtype(column.dtype)
            and bool(column.isna().any()))
    if not numeric or gaps:
        return np.array(
            [None if v is None or v is pd.NA else v for v in column],
            object,
        ), "text"
    if pd.api.types.is_float_dtype(column):
        return column.to_numpy("float64", na_value=np.nan), "float"
    return column.to_numpy("int64"), "integer"