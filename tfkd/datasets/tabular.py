"""Your own data: a CSV or Parquet file, or a folder of shards, batched.

Problems in the files are found before any training and named by file, row
and column. CSV rows count as a spreadsheet shows them (the header is row
1); Parquet has no header, so its records count from 1.
"""

import dataclasses
import os

import numpy as np
import pandas as pd

from tfkd.datasets import splits
from tfkd.datasets.column_settings import check_list_columns
from tfkd.datasets.column_settings import column_settings
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.file_encoding import encode_frame
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.row_checks import RowChecks
from tfkd.datasets.tabular_files import ROW_WORD
from tfkd.datasets.tabular_files import check_columns
from tfkd.datasets.tabular_files import find_shards
from tfkd.datasets.tabular_files import parse_frame
from tfkd.datasets.tabular_files import read_chunks
from tfkd.datasets.tabular_files import resolve_label_and_task


@dataclasses.dataclass
class _Table:
    """The parsed files: numbers, and where each row came from."""

    frame: pd.DataFrame
    kinds: dict  # column -> "integer", "float" or "text", over all shards
    shards: list  # "path row" or "path record", one per shard
    shard_of_row: np.ndarray
    rows: np.ndarray  # of each frame row, in its file

    def where(self, i):
        return f"{self.shards[self.shard_of_row[i]]} {self.rows[i]}"


def from_files(
    path: str | os.PathLike,
    label: str | None = None,
    spec: FeatureSpec | None = None,
    task: str | None = None,
    seed: int = 42,
    batch_size: int = 256,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    min_count: int = 1,
    max_tokens: int | None = None,
    list_columns: dict[str, str] | None = None,
    hash_columns: dict[str, int] | None = None,
) -> MovieLensData:
    """Loads a CSV or Parquet file, or a folder of shards, as datasets.

    Without `spec`, every other column than the label is a feature:
    - a column of ids from 1 (whole numbers, none missing, below a
      million) is a categorical feature whose values are the ids (table
      size = largest id + 1);
    - a column of other ids: text (`"u00042"`, a UUID, a title), whole
      numbers from 0, negative or sparse 64-bit ones, cells left empty,
      is a categorical feature with a vocabulary: its values in the
      training rows, most frequent first, are ids 1, 2, ...; id 0 is
      unknown (a value training never saw, a rare one, an empty cell);
    - any other column of numbers is a numeric feature (standardised with
      the column's mean and standard deviation).
    With `spec`, only its features and label are read, each as the spec
    says. `data.spec.to_dict()` written as JSON (vocabularies included) is
    a spec to edit (e.g. `"kind": "numeric"` for an integer quantity) and
    read back with `FeatureSpec.from_dict`. The rows are split at random
    (seeded). The exported model takes the ids the encoded frames hold;
    the sidecar carries the vocabularies, and `export/run_tflite.py`
    maps an app's raw values with them.

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
        min_count: int >= 1. A built vocabulary keeps the values seen at
            least this often in the training rows; rarer ones read as
            unknown, so the model learns an unknown id. Defaults to `1`.
        max_tokens: int or None. At most this many values per built
            vocabulary, the most frequent. Defaults to `None` (all, up
            to a million: more is refused with this fix).
        list_columns: dict or None. `{column: separator}` of columns that
            hold a list per cell (`{"genres": "|"}` for `Action|Comedy`):
            a list feature with a vocabulary of the values, as long as
            the longest list, pooled by tfkd's models. A spec's list
            features carry their separator. Defaults to `None`.
        hash_columns: dict or None. `{column: buckets}` of id columns
            with too many values for a vocabulary (`{"session": 2**20}`):
            each value's id is its hash, `1..buckets`
            (`tfkd.datasets.id_hashing`); values may share an id, so
            give a few times as many buckets as values. A list column may
            be hashed too. A spec's features carry `hash_buckets`.
            Defaults to `None`.

    Returns:
        `MovieLensData` with `train`, `val`, `test`, `frames` (encoded
        ids) and `spec`; `users` and `items` are empty frames.

    Raises:
        FileNotFoundError: if `path` does not exist or holds no shards.
        ValueError: on a problem in the files, named by file, row and
            column: a row that does not parse, an empty or text cell in a
            numeric column, a missing label column (the message lists the
            columns), a NaN, out-of-range or single-valued label, a ctr
            label with fewer than 3 positives or negatives; with a spec,
            an id below 1 or text in a feature without a vocabulary.
        ImportError: for Parquet files without `pyarrow`.

    Example:

    ```python
    data = tfkd.datasets.from_files("clicks.csv", label="clicked")
    student = tfkd.models.student(data.spec)
    ```
    """
    label, task = resolve_label_and_task(label, spec, task)
    splits.validate_fractions(val_fraction, test_fraction)
    settings = column_settings(spec, label, min_count, max_tokens,
                               list_columns, hash_columns)
    wanted = None if spec is None else [*spec.names, label]
    table = _read_all(find_shards(path), label, wanted, settings.separators)
    check_list_columns(settings, list(table.frame.columns),
                       os.fspath(path))
    if table.frame.empty:
        raise ValueError(f"{os.fspath(path)} holds no data rows.")
    return _checked_data(table, label, task, spec, seed, batch_size,
                         val_fraction, test_fraction, settings)


def _checked_data(table, label, task, spec, seed, batch_size, val_fraction,
                  test_fraction, settings):
    checks = RowChecks(label, task, settings)
    # The vocabularies come from the training rows only, as a model would
    # be trained: a value seen only in val or test reads as unknown.
    train = splits.random_codes(len(table.frame), val_fraction,
                                test_fraction, seed) == 0
    checks.add(table.frame, table.kinds, table.where, train)
    spec = checks.spec(spec)
    frames = splits.random_split(
        encode_frame(table.frame, spec), val_fraction, test_fraction, seed
    )
    return MovieLensData.from_frames(frames, spec, pd.DataFrame(),
                                     pd.DataFrame(), batch_size, seed)


def _read_all(shards, label, wanted, separators):
    frames, rows, kinds = [], [], {}
    for path, fmt in shards:
        frame, flags, shard_rows = next(read_chunks(
            path, fmt, label, wanted, chunk_rows=None, separators=separators
        ))
        if frames and sorted(frame) != sorted(frames[0]):
            raise ValueError(
                f"Every shard needs the same columns. {shards[0][0]} has "
                f"{list(frames[0])}; {path} has {list(frame)}"
            )
        frames.append(frame)
        rows.append(shard_rows)
        for name, kind in flags.items():
            kinds[name] = _merged_kind(kinds.get(name, kind), kind)
    return _Table(
        frame=pd.concat(frames, ignore_index=True)[list(frames[0])],
        kinds=kinds,
        shards=[f"{path} {ROW_WORD[fmt]}" for path, fmt in shards],
        shard_of_row=np.repeat(np.arange(len(rows)), [len(r) for r in rows]),
        rows=np.concatenate(rows),
    )


def _merged_kind(first, second):
    # Shards of one column: a list column in all (by its separator), else
    # text if any is, else float if any is.
    for kind in ("list", "text", "float"):
        if kind in (first, second):
            return kind
    return "integer"


def from_frame(
    frame: pd.DataFrame,
    label: str | None = None,
    spec: FeatureSpec | None = None,
    task: str | None = None,
    seed: int = 42,
    batch_size: int = 256,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    min_count: int = 1,
    max_tokens: int | None = None,
    list_columns: dict[str, str] | None = None,
    hash_columns: dict[str, int] | None = None,
) -> MovieLensData:
    """Loads a pandas DataFrame as datasets, as `from_files` loads a file.

    The same columns rules, checks, vocabularies and messages as
    `from_files`; a bad cell is named by its index label (`frame index
    7`). String, integer (nullable ones too: `<NA>` reads as unknown),
    float and bool columns are read; the frame is not changed.

    Args:
        frame: pandas DataFrame, one row per example.
        label: str or None. The label column. Defaults to `spec.label`.
        spec: `FeatureSpec` or None. The features to read; inferred when
            None. Defaults to `None`.
        task: str or None. `"ctr"` or `"rating"`. Defaults to
            `spec.task`, else `"ctr"`.
        seed: int. Seed of the split and the train shuffle. Defaults to
            `42`.
        batch_size: int. Defaults to `256`.
        val_fraction: float. Defaults to `0.1`.
        test_fraction: float. Defaults to `0.1`.
        min_count: int >= 1. As `from_files`. Defaults to `1`.
        max_tokens: int or None. As `from_files`. Defaults to `None`.
        list_columns: dict or None. As `from_files`; a cell may also hold
            a list. Defaults to `None`.
        hash_columns: dict or None. As `from_files`. Defaults to `None`.

    Returns:
        `MovieLensData`, as `from_files`.

    Raises:
        TypeError: if `frame` is not a DataFrame, or a column name is not
            a str.
        ValueError: as `from_files`; for an empty frame, or cells that
            are lists.

    Example:

    ```python
    df = pd.read_sql("SELECT user_id, sku, price, clicked FROM log", con)
    data = tfkd.datasets.from_frame(df, label="clicked")
    ```
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            "`frame` must be a pandas DataFrame (for files, use "
            f"from_files). Received: {type(frame).__name__}"
        )
    label, task = resolve_label_and_task(label, spec, task)
    splits.validate_fractions(val_fraction, test_fraction)
    settings = column_settings(spec, label, min_count, max_tokens,
                               list_columns, hash_columns)
    named = [c for c in frame.columns if not isinstance(c, str)]
    if named:
        raise TypeError(
            "Every column name must be a str (it names a model input). "
            f"Received: {named[:5]}; rename with frame.columns.astype(str)"
        )
    wanted = None if spec is None else [*spec.names, label]
    check_columns("The frame", list(frame.columns), label, wanted)
    check_list_columns(settings, list(frame.columns), "The frame")
    raw = frame if wanted is None else frame[wanted]
    if raw.empty:
        raise ValueError("The frame holds no rows.")
    _refuse_lists(raw.drop(columns=list(settings.separators)))
    index = np.array([_label(v) for v in raw.index], object)
    parsed, kinds = parse_frame(
        raw.reset_index(drop=True), lambda i: f"frame index {index[i]}",
        label, text_cells=False, separators=settings.separators,
    )
    table = _Table(frame=parsed, kinds=kinds, shards=["frame index"],
                   shard_of_row=np.zeros(len(raw), np.int64), rows=index)
    return _checked_data(table, label, task, spec, seed, batch_size,
                         val_fraction, test_fraction, settings)


def _refuse_lists(frame):
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        lists = column.map(lambda v: isinstance(v, (list, tuple, np.ndarray,
                                                    set, dict)))
        if lists.any():
            i = int(np.argmax(lists.to_numpy()))
            raise ValueError(
                f"frame index {_label(frame.index[i])}, column '{name}' "
                f"holds a list ({column.iloc[i]!r}): declare it with "
                f"list_columns={{'{name}': '|'}} (any separator), keep one "
                "value per row, or drop the column."
            )


def _label(value):
    # How a user would write the index label: 7, '2024-01-02', 'a'.
    return repr(value) if isinstance(value, str) else str(value)
