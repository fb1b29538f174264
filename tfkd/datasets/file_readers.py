"""tf.data readers of CSV / Parquet shards, one split at a time.

CSV shards are read by `tf.data.TextLineDataset` and `tf.io.decode_csv`;
Parquet shards by `pyarrow.parquet.ParquetFile.iter_batches` through
`tf.data.Dataset.from_generator` (tensorflow-io is not a dependency, so the
Parquet path runs in this Python process, under its GIL). Either way a
shard is read `BLOCK_ROWS` rows at a time and a few shards are interleaved,
so memory does not grow with the files.
"""

import numpy as np
import tensorflow as tf

from tfkd.datasets.file_encoding import encode_block
from tfkd.datasets.file_encoding import vocabulary_tables
from tfkd.datasets.row_split import SPLIT_NAMES
from tfkd.datasets.tabular_files import open_parquet
from tfkd.datasets.vocabulary import MISSING
from tfkd.datasets.vocabulary import canonical
from tfkd.datasets.vocabulary import split_cell

# Rows decoded together: large enough that per-block work is amortised,
# small enough that a few blocks in flight stay a few MB.
BLOCK_ROWS = 4096
# Shards read side by side, so train batches mix shards.
CYCLE_LENGTH = 4
# A data line of only commas is blank: `from_files` skips it too.
BLANK_LINE = ",*"


def split_blocks(shards, layouts, spec, row_split, part, shuffle_seed=None):
    """The rows of one split, encoded, in blocks of up to `BLOCK_ROWS`.

    Args:
        shards: list of `(path, format)`, all of one format.
        layouts: list of each shard's column names (`shard_layouts`).
        spec: `FeatureSpec`. The features to read, and the label.
        row_split: `RowSplit`.
        part: str. `"train"`, `"val"` or `"test"`.
        shuffle_seed: int or None. Reshuffles the order shards are read
            in each epoch; None reads them in name order.

    Returns:
        `tf.data.Dataset` of `(features, label)` blocks of any length
        (the split's rows of one block of a shard): int32 ids, float32
        numbers and label, as `from_files` encodes them.
    """
    # Cells read as numbers, then cells looked up in a vocabulary.
    numbers = [f.name for f in spec.features if not f.is_mapped]
    texts = [f.name for f in spec.features if f.is_mapped]
    names = [*numbers, spec.label, *texts]
    tables = vocabulary_tables(spec)
    code = SPLIT_NAMES.index(part)
    fmt = shards[0][1]
    indices = np.array([[columns.index(n) for n in names]
                        for columns in layouts], np.int32)
    source = tf.data.Dataset.from_tensor_slices((
        [path for path, _ in shards],
        np.arange(len(shards), dtype=np.int64),
        indices,
    ))
    if shuffle_seed is not None:
        source = source.shuffle(len(shards), seed=shuffle_seed,
                                reshuffle_each_iteration=True)
    if fmt == "csv":
        read = _csv_reader(len(layouts[0]), len(numbers) + 1)
    else:
        read = _parquet_reader(names, len(numbers) + 1, {
            f.name: f.separator for f in spec.features if f.separator})
    blocks = source.interleave(
        read,
        cycle_length=min(len(shards), CYCLE_LENGTH),
        num_parallel_calls=min(len(shards), CYCLE_LENGTH),
        deterministic=True,
    )

    def keep(shard, start, values, cells):
        positions = start + tf.range(tf.shape(values)[0], dtype=tf.int64)
        mask = tf.equal(row_split.codes(shard, positions), code)
        return encode_block(tf.boolean_mask(values, mask),
                            tf.boolean_mask(cells, mask), spec, tables)

    return blocks.map(keep, num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=True)


def mix_blocks(blocks, window_rows, seed):
    """Shuffles rows in windows of blocks, anew each epoch, vectorised.

    Blocks are first shuffled among `2 * window` of them, then each window
    of blocks (about `window_rows` rows) is concatenated and permuted as
    one tensor. Rows then mix as in a `window_rows` shuffle buffer, at the
    cost of one gather per window instead of per-example tf.data work.

    Args:
        blocks: dataset of `(features, label)` blocks (`split_blocks`).
        window_rows: int. Rows permuted together.
        seed: int. Seeds the first epoch; later epochs draw new orders.

    Returns:
        dataset of `(features, label)` windows, each a permutation.
    """
    window = max(1, -(-window_rows // BLOCK_ROWS))
    # New seeds each epoch, from `seed`: stateless ops alone would repeat.
    seeds = tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True
    ).batch(2)
    blocks = blocks.shuffle(2 * window, seed=seed,
                            reshuffle_each_iteration=True)

    def permute(pair, rows):
        rows = tf.nest.map_structure(lambda r: r.flat_values, rows)
        count = tf.shape(rows[1])[0]
        order = tf.argsort(tf.random.stateless_uniform([count], seed=pair))
        return tf.nest.map_structure(lambda v: tf.gather(v, order), rows)

    return tf.data.Dataset.zip(seeds, blocks.ragged_batch(window)).map(
        permute, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def _csv_reader(num_columns, num_numbers):
    defaults = [[""]] * num_columns

    def drop_blank(seen, lines):
        # Whole blocks at a time: a per-line filter costs ~10 us a line.
        # `seen` counts the data rows before this block, so a row's
        # position skips blank lines, as the checking pass counts it.
        kept = tf.boolean_mask(lines, tf.logical_not(
            tf.strings.regex_full_match(lines, BLANK_LINE)
        ))
        return seen + tf.size(kept, tf.int64), (seen, kept)

    def decode(shard, columns, start, lines):
        fields = tf.stack(tf.io.decode_csv(lines, defaults), axis=1)
        cells = tf.strings.strip(tf.gather(fields, columns, axis=1))
        numbers = tf.strings.to_number(cells[:, :num_numbers], tf.float64)
        return shard, start, numbers, cells[:, num_numbers:]

    def read(path, shard, columns):
        blocks = tf.data.TextLineDataset(path).skip(1).batch(BLOCK_ROWS)
        return blocks.scan(tf.constant(0, tf.int64), drop_blank).map(
            lambda start, lines: decode(shard, columns, start, lines)
        )

    return read


def _parquet_reader(names, num_numbers, separators):
    signature = (
        tf.TensorSpec((), tf.int64),
        tf.TensorSpec((None, num_numbers), tf.float64),
        tf.TensorSpec((None, len(names) - num_numbers), tf.string),
    )

    def blocks(path):
        start = 0
        for batch in open_parquet(path.decode()).iter_batches(
            batch_size=BLOCK_ROWS, columns=names
        ):
            numbers = [batch.column(n).to_numpy(zero_copy_only=False)
                       .astype(np.float64) for n in names[:num_numbers]]
            texts = [_canonical_text(batch.column(n).to_pylist(),
                                     separators.get(n))
                     for n in names[num_numbers:]]
            yield (start, np.stack(numbers, axis=1),
                   np.stack(texts, axis=1) if texts
                   else np.zeros((batch.num_rows, 0), object))
            start += batch.num_rows

    def read(path, shard, columns):
        del columns  # pyarrow selects the columns by name.
        rows = tf.data.Dataset.from_generator(
            blocks, args=(path,), output_signature=signature
        )
        return rows.map(lambda start, values, cells:
                        (shard, start, values, cells))

    return read


def _canonical_text(values, separator=None):
    # As `vocabulary.canonical`, written as text for the tf lookup; a list
    # cell joined on its separator, for tf to split again.
    if separator is not None:
        return np.array([
            separator.join(_text(v) for v in split_cell(cell, separator))
            for cell in values
        ], object)
    return np.array([_text(v) for v in values], object)


def _text(value):
    key = canonical(value)
    return "" if key is MISSING else str(key)
