"""One bounded pass over the shards: check every row, infer the spec.

`stream_files` runs it before training. It reads `chunk_rows` rows at a
time with pandas (CSV) or pyarrow (Parquet), feeds `RowChecks` the same
checks `from_files` runs, and counts the rows of each split, so memory
stays flat however many rows the files hold.
"""

import numpy as np

from tfkd.datasets.column_settings import ColumnSettings
from tfkd.datasets.row_checks import RowChecks
from tfkd.datasets.row_split import SPLIT_NAMES
from tfkd.datasets.tabular_files import ROW_WORD
from tfkd.datasets.tabular_files import check_columns
from tfkd.datasets.tabular_files import read_chunks
from tfkd.datasets.tabular_files import shard_columns


def shard_layouts(shards, label, wanted):
    """Returns each shard's column names, read from headers / schemas.

    Args:
        shards: list of `(path, format)`.
        label: str. The label column.
        wanted: list of str or None. The columns a spec reads.

    Returns:
        list of lists of str, one per shard, in the file's order.

    Raises:
        ValueError: if a shard lacks a needed column (the message lists
            its columns) or the shards' columns differ.
    """
    layouts = []
    for path, fmt in shards:
        columns = shard_columns(path, fmt)
        check_columns(path, columns, label, wanted)
        if layouts and sorted(columns) != sorted(layouts[0]):
            raise ValueError(
                f"Every shard needs the same columns. {shards[0][0]} has "
                f"{layouts[0]}; {path} has {columns}"
            )
        layouts.append(columns)
    return layouts


def scan_files(source, shards, label, task, spec, row_split, chunk_rows,
               settings=None):
    """Checks every row and counts each split, `chunk_rows` at a time.

    Args:
        source: str. The file or folder the user gave, for messages.
        shards: list of `(path, format)`.
        label: str. The label column.
        task: str. `"ctr"` or `"rating"`.
        spec: `FeatureSpec` or None. None infers one from the rows.
        row_split: `RowSplit`. Places each row in train, val or test.
        chunk_rows: int. Rows read at once.
        settings: `ColumnSettings` or None. Vocabulary limits and list
            columns; None: the defaults.

    Returns:
        `(spec, rows)`: the spec (given or inferred) and a dict of the
        number of rows in `"train"`, `"val"` and `"test"`.

    Raises:
        ValueError: as `from_files`, naming the file, row and column of
            the first bad row of the first broken rule.
    """
    wanted = None if spec is None else [*spec.names, label]
    settings = settings or ColumnSettings()
    checks = RowChecks(label, task, settings)
    counts = np.zeros(len(SPLIT_NAMES), np.int64)
    for k, (path, fmt) in enumerate(shards):
        start = 0
        for frame, kinds, rows in read_chunks(path, fmt, label, wanted,
                                              chunk_rows,
                                              settings.separators):
            # Every chunk in the first one's column order, as from_files.
            frame = frame[checks.columns or list(frame.columns)]
            positions = np.arange(start, start + len(frame))
            codes = row_split.codes(k, positions).numpy()
            # Vocabularies from the training rows, as from_files.
            checks.add(frame, kinds, _locator(path, fmt, rows),
                       train=codes == SPLIT_NAMES.index("train"))
            counts += np.bincount(codes, minlength=len(SPLIT_NAMES))
            start += len(frame)
    if not checks.rows:
        raise ValueError(f"{source} holds no data rows.")
    rows = {name: int(n)
            for name, n in zip(SPLIT_NAMES, counts, strict=True)}
    return checks.spec(spec), rows


def _locator(path, fmt, rows):
    word = ROW_WORD[fmt]
    return lambda i: f"{path} {word} {rows[i]}"
