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
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.file_encoding import encode_frame
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.row_checks import RowChecks
from tfkd.datasets.tabular_files import ROW_WORD
from tfkd.datasets.tabular_files import find_shards
from tfkd.datasets.tabular_files import read_chunks
from tfkd.datasets.tabular_files import resolve_label_and_task


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
    path: str | os.PathLike,
    label: str | None = None,
    spec: FeatureSpec | None = None,
    task: str | None = None,
    seed: int = 42,
    batch_size: int = 256,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> MovieLensData:
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
    label, task = resolve_label_and_task(label, spec, task)
    splits.validate_fractions(val_fraction, test_fraction)
    wanted = None if spec is None else [*spec.names, label]
    table = _read_all(find_shards(path), label, wanted)
    if table.frame.empty:
        raise ValueError(f"{os.fspath(path)} holds no data rows.")
    checks = RowChecks(label, task)
    checks.add(table.frame, table.integer, table.where)
    spec = checks.spec(spec)
    frames = splits.random_split(
        encode_frame(table.frame, spec), val_fraction, test_fraction, seed
    )
    return MovieLensData.from_frames(frames, spec, pd.DataFrame(),
                                     pd.DataFrame(), batch_size, seed)


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
    # One chunk: the whole shard.
    return next(read_chunks(path, fmt, label, wanted, chunk_rows=None))
