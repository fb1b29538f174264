"""The model-ready values of file columns: one rule, in NumPy and in tf.

`from_files` encodes a whole frame with NumPy; `stream_files` encodes
blocks inside tf.data. Both read every id and number cell as a float64
first (exact for ids up to 2**53), so the two give the same int32 ids and
float32 numbers; a feature with a vocabulary maps its raw cells
(`tfkd.datasets.vocabulary.lookup`), one with `hash_buckets` hashes them
(`tfkd.datasets.id_hashing`), with tf's own op in both loaders.
"""

import numpy as np
import pandas as pd
import tensorflow as tf

from tfkd.datasets.id_hashing import hash_key
from tfkd.datasets.vocabulary import MAX_WHOLE
from tfkd.datasets.vocabulary import WHOLE_NUMBER
from tfkd.datasets.vocabulary import lookup
from tfkd.datasets.vocabulary import lookup_lists

INT32_MAX = np.iinfo(np.int32).max


def encode_frame(frame, spec):
    """Model-ready columns: int32 ids, float32 numbers and label.

    Args:
        frame: pandas DataFrame with the spec's features and label.
        spec: `FeatureSpec`.

    Returns:
        pandas DataFrame of the encoded features and `spec.label`.
    """
    encoded = {}
    for feature in spec.features:
        if feature.separator is not None:
            ids = lookup_lists(frame[feature.name].to_numpy(),
                               feature.length,
                               lambda v, f=feature: map_values(v, f))
            encoded[feature.name] = list(ids)
            continue
        if feature.is_mapped:
            encoded[feature.name] = map_values(
                frame[feature.name].to_numpy(), feature)
            continue
        values = frame[feature.name].to_numpy(np.float64)
        # Ids past int32 stay out of range (read as unknown), rather than
        # wrapping round onto a real id.
        encoded[feature.name] = (
            values.astype(np.float32) if feature.is_numeric
            else np.minimum(values, INT32_MAX).astype(np.int32)
        )
    encoded[spec.label] = frame[spec.label].to_numpy(np.float32)
    return pd.DataFrame(encoded)


def map_values(values, feature):
    """The ids of raw cells of a feature with a vocabulary or hashing.

    Args:
        values: array-like of raw cells.
        feature: `Feature` with `vocabulary` or `hash_buckets`.

    Returns:
        int32 NumPy array of ids, one per cell; 0 for unknown and missing.
    """
    if feature.vocabulary is not None:
        return lookup(values, feature.vocabulary)
    # Hashed once per distinct cell, by the op the tf.data path runs.
    codes, uniques = pd.factorize(pd.Series(np.asarray(values, object)),
                                  use_na_sentinel=True)
    keys = [hash_key(u) for u in uniques]
    table = np.zeros(len(keys) + 1, np.int32)  # code -1, a null: the last
    if keys:
        hashed = tf.strings.to_hash_bucket_fast(
            [b"" if k is None else k for k in keys], feature.hash_buckets)
        known = np.array([k is not None for k in keys])
        table[:-1] = np.where(known, hashed.numpy() + 1, 0)
    return table[codes]


def encode_block(numbers, texts, spec, tables):
    """`encode_frame` inside tf.data, on one block of rows.

    Args:
        numbers: float64 tensor `(rows, k)`: the features without a
            vocabulary, in spec order, then the label.
        texts: string tensor `(rows, m)`: the features with a vocabulary,
            in spec order, each cell as written (CSV) or as `canonical`
            writes it (Parquet).
        spec: `FeatureSpec`.
        tables: dict. From `vocabulary_tables(spec)`.

    Returns:
        `(features, label)`: dict of int32 / float32 tensors `(rows,)`
        and a float32 label `(rows,)`.
    """
    features, j, k = {}, 0, 0
    for feature in spec.features:
        if feature.separator is not None:
            features[feature.name] = _lookup_lists(
                texts[:, k], feature, tables.get(feature.name))
            k += 1
            continue
        if feature.is_mapped:
            features[feature.name] = _lookup(texts[:, k], feature,
                                             tables.get(feature.name))
            k += 1
            continue
        column = numbers[:, j]
        j += 1
        features[feature.name] = (
            tf.cast(column, tf.float32) if feature.is_numeric
            else tf.cast(tf.minimum(column, INT32_MAX), tf.int32)
        )
    return features, tf.cast(numbers[:, -1], tf.float32)


def vocabulary_tables(spec):
    """`{name: tf.lookup.StaticHashTable}` of the spec's vocabularies:
    key -> id, every other key -> 0."""
    tables = {}
    for feature in spec.features:
        if feature.vocabulary is None:
            continue
        text_keys = isinstance(feature.vocabulary[0], str)
        keys = tf.constant(list(feature.vocabulary),
                           tf.string if text_keys else tf.int64)
        ids = tf.range(1, len(feature.vocabulary) + 1, dtype=tf.int32)
        tables[feature.name] = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, ids), default_value=0
        )
    return tables


def _lookup_lists(cells, feature, table):
    # `vocabulary.split_cell` and `lookup_lists` in tf: split, drop blank
    # values, look each up, pad with 0 to the feature's length.
    values = tf.strings.split(cells, feature.separator)
    values = tf.ragged.boolean_mask(
        values, tf.strings.strip(values) != "")
    ids = values.with_flat_values(
        _lookup(values.flat_values, feature, table))
    return ids.to_tensor(0, shape=[None, feature.length])


def _lookup(cells, feature, table):
    # `vocabulary.canonical` in tf: whole numbers of up to 18 digits are
    # numbers ("007" is 7), longer ones text without sign or zeros.
    cells = tf.strings.strip(cells)
    whole = tf.strings.regex_full_match(cells, WHOLE_NUMBER.pattern)
    digits = tf.strings.regex_replace(cells, r"^[+-]?0*", "")
    short = whole & (tf.strings.length(digits) <= len(str(MAX_WHOLE)) - 1)
    number = tf.strings.to_number(tf.where(short, cells, "0"), tf.int64)
    if table is not None and not isinstance(feature.vocabulary[0], str):
        return tf.where(short, table.lookup(number), 0)
    negative = tf.strings.regex_full_match(cells, "-.*")
    long = tf.where(negative, "-" + digits, digits)
    key = tf.where(short, tf.strings.as_string(number),
                   tf.where(whole, long, cells))
    if table is not None:
        return table.lookup(key)
    hashed = tf.strings.to_hash_bucket_fast(key, feature.hash_buckets)
    return tf.where(key == "", 0, tf.cast(hashed, tf.int32) + 1)
