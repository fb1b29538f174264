"""Your own files, read as they train: `stream_files`, beyond memory."""

import collections.abc
import dataclasses
import math
import os

import pandas as pd
import tensorflow as tf

from tfkd._internal.arguments import validate_positive_int
from tfkd.datasets import splits
from tfkd.datasets.column_settings import check_list_columns
from tfkd.datasets.column_settings import column_settings
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.file_readers import mix_blocks
from tfkd.datasets.file_readers import split_blocks
from tfkd.datasets.file_scan import scan_files
from tfkd.datasets.file_scan import shard_layouts
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.pipelines import with_spec
from tfkd.datasets.row_checks import check_spec_lists
from tfkd.datasets.row_split import SPLIT_NAMES
from tfkd.datasets.row_split import RowSplit
from tfkd.datasets.tabular_files import find_shards
from tfkd.datasets.tabular_files import resolve_label_and_task

# Rows permuted together in train: a few MB of encoded tensors, mixing
# about 25 blocks of 4K rows from several shards.
DEFAULT_SHUFFLE_BUFFER = 100_000
# Rows the checking pass parses at once: tens of MB as pandas strings.
DEFAULT_CHUNK_ROWS = 100_000


class StreamedFrames(collections.abc.Mapping):
    """`frames` of `stream_files` data: the split names, never the rows.

    The rows stay in the files, so code that needs a frame (e.g. a table
    of the test rows) fails here with the fix rather than getting an
    empty frame.
    """

    def __getitem__(self, name):
        raise LookupError(
            f"stream_files data keeps its rows in the files: `frames` "
            f"holds none (asked for {name!r}). Iterate data.train, "
            "data.val or data.test (data.rows has their sizes), or load "
            "the files with tfkd.datasets.from_files if they fit in memory."
        )

    def __iter__(self):
        return iter(SPLIT_NAMES)

    def __len__(self):
        return len(SPLIT_NAMES)


@dataclasses.dataclass
class StreamedData(MovieLensData):
    """`MovieLensData` whose rows stay in the files.

    Args:
        rows: dict or None. Rows in `"train"`, `"val"` and `"test"`,
            counted by the checking pass; None when it was skipped.
        files: tuple of str. The shards read, in name order.

    `frames` is a `StreamedFrames`: its values raise; `users` and `items`
    are empty frames, as for `from_files`.
    """

    rows: dict | None = None
    files: tuple = ()


def stream_files(
    path: str | os.PathLike,
    label: str | None = None,
    spec: FeatureSpec | None = None,
    task: str | None = None,
    seed: int = 42,
    batch_size: int = 256,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    check: bool = True,
    min_count: int = 1,
    max_tokens: int | None = None,
    list_columns: dict[str, str] | None = None,
    hash_columns: dict[str, int] | None = None,
) -> StreamedData:
    """Reads CSV or Parquet shards as they train, never holding them whole.

    The same data as `from_files`, for files beyond memory. First one pass
    reads `chunk_rows` rows at a time: it checks every row with the checks
    and messages of `from_files` (file, row and column; "(and N more
    rows)" counts over all shards; a cell that does not parse is reported
    at once, with the other bad cells of its chunk), infers the spec when
    none is given (the column rules of `from_files`: ids from 1 as they
    are, other ids through a vocabulary counted over the training rows;
    numeric mean and standard deviation, merged over chunks) and counts
    each split. Then the datasets read the shards through tf.data,
    encoding each value as `from_files` does (int32 ids, ids past the
    vocabulary left for the model to read as unknown, vocabularies
    looked up in a `tf.lookup.StaticHashTable`; float32 numbers and
    label). The vocabulary counts are held in memory: one entry per
    distinct value of each categorical column.

    The split is a seeded hash of (shard position in name order, data row
    position in the shard): deterministic, each row in exactly one part,
    the fractions as `from_files` in expectation (not exact counts, and
    not the rows `from_files` would pick). Each split reads every shard
    and keeps its own rows, so an epoch with validation reads the files
    twice. Train reads the shards in a new order each epoch, shuffles its
    blocks of rows, and permutes `shuffle_buffer` rows at a time (new
    orders each epoch, the same ones for the same seed); val and test
    are read in order.

    CSV shards must hold one record per line (no line breaks inside
    quoted values).

    Args:
        path: str or path-like. A `.csv` or `.parquet` file, or a folder of
            shards of one format (read in name order). Parquet needs
            `pyarrow`.
        label: str or None. The label column. Defaults to `spec.label`.
        spec: `FeatureSpec` or None. The features to read; inferred by the
            checking pass when None. Defaults to `None`.
        task: str or None. `"ctr"` or `"rating"`. Defaults to `spec.task`,
            else `"ctr"`.
        seed: int in [0, 2**63). Seeds the split, the shard order and the
            shuffle. Defaults to `42`.
        batch_size: int. Defaults to `256`.
        val_fraction: float. Expected share of rows in val. Defaults to
            `0.1`.
        test_fraction: float. Expected share of rows in test. Defaults to
            `0.1`.
        shuffle_buffer: int. Train rows permuted together (memory grows
            with it, not with the files). Defaults to `100_000`.
        chunk_rows: int. Rows the checking pass reads at once. Defaults
            to `100_000`.
        check: bool. Run the checking pass. Only with a `spec` may it be
            skipped (for files checked before): bad rows then fail in
            tf.data while training, and `rows` is None. Defaults to
            `True`.
        min_count: int >= 1. As `from_files`. Defaults to `1`.
        max_tokens: int or None. As `from_files`. Defaults to `None`.
        list_columns: dict or None. As `from_files` (text cells, split in
            tf.data by `tf.strings.split`). Defaults to `None`.
        hash_columns: dict or None. As `from_files` (hashed in tf.data by
            `tf.strings.to_hash_bucket_fast`; nothing is counted, so a
            hashed column costs no memory). Defaults to `None`.

    Returns:
        `StreamedData` (a `MovieLensData`): `train`, `val`, `test` and
        `spec`; `rows`, the examples of each split (train has
        `ceil(rows / batch_size)` batches); `files`; `frames` names the
        splits but holds no rows (reading one raises with the fix).

    Raises:
        FileNotFoundError: if `path` does not exist or holds no shards.
        ValueError: on a problem in the files, as `from_files`; on bad
            arguments, or `check=False` without a spec.
        TypeError: on an argument of the wrong type.

    Example:

    ```python
    data = tfkd.datasets.stream_files("clicks/", label="clicked")
    student = tfkd.models.student(data.spec)
    student.fit(data.train, validation_data=data.val)
    ```
    """
    label, task = resolve_label_and_task(label, spec, task)
    _validate(val_fraction, test_fraction, batch_size, shuffle_buffer,
              chunk_rows, check, spec)
    settings = column_settings(spec, label, min_count, max_tokens,
                               list_columns, hash_columns)
    row_split = RowSplit(seed, val_fraction, test_fraction)
    shards = find_shards(path)
    wanted = None if spec is None else [*spec.names, label]
    layouts = shard_layouts(shards, label, wanted)
    check_list_columns(settings, layouts[0], os.fspath(path))
    rows = None
    if check:
        spec, rows = scan_files(os.fspath(path), shards, label, task, spec,
                                row_split, chunk_rows, settings)
    parts = {}
    for name in SPLIT_NAMES:
        train = name == "train"
        blocks = split_blocks(shards, layouts, spec, row_split, name,
                              shuffle_seed=seed if train else None)
        if train:
            blocks = mix_blocks(blocks, shuffle_buffer, seed)
        batches = blocks.rebatch(batch_size)
        if rows is not None:
            # Keras then knows the epoch's length; a reader that lost or
            # added a row would fail here rather than train on it.
            batches = batches.apply(tf.data.experimental.assert_cardinality(
                math.ceil(rows[name] / batch_size)
            ))
        parts[name] = batches.prefetch(tf.data.AUTOTUNE)
    # `_validate` refuses check=False without a spec; the pass infers one.
    assert spec is not None
    for name in parts:
        parts[name] = with_spec(parts[name], spec)
    return StreamedData(
        **parts, frames=StreamedFrames(), spec=spec, users=pd.DataFrame(),
        items=pd.DataFrame(), rows=rows, files=tuple(p for p, _ in shards),
    )


def _validate(val_fraction, test_fraction, batch_size, shuffle_buffer,
              chunk_rows, check, spec):
    splits.validate_fractions(val_fraction, test_fraction)
    validate_positive_int("batch_size", batch_size)
    for name, value in (("shuffle_buffer", shuffle_buffer),
                        ("chunk_rows", chunk_rows)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"`{name}` must be an int. Received: {name}={value!r}"
            )
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
    if not isinstance(check, bool):
        raise TypeError(f"`check` must be a bool. Received: check={check!r}")
    if not check and spec is None:
        raise ValueError(
            "check=False needs a `spec`: without one, the checking pass "
            "infers it. Pass spec=..., or leave check=True."
        )
    if spec is not None:
        # Refused before reading anything (from_files finds it later).
        check_spec_lists(spec)
