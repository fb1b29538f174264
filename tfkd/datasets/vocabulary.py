"""Vocabularies of raw ids: text, ids from 0, negative or sparse 64-bit ids.

A categorical column whose values are not already ids from 1 gets a
vocabulary in the checking pass: its values, most frequent first (ties in
value order, so the result does not depend on how the rows were chunked).
Value `vocabulary[i]` is id `i + 1`; id 0 is every other value: one never
seen in training, one rarer than `min_count` or past `max_tokens`, and a
missing cell. Training, evaluation, the exporter's checks and the app
(`export/run_tflite.py`) apply the same mapping.

Values are compared as text, with surrounding spaces removed, except
whole numbers, compared as numbers: `"007"`, `"7"` and `7` are one id, so
a CSV cell, a Parquet integer and the number an app sends agree.
"""

import re

import numpy as np
import pandas as pd

# A missing cell: an empty CSV cell, a null, NaN. Always id 0.
MISSING = None
WHOLE_NUMBER = re.compile(r"[+-]?\d+")
# Whole numbers of 19 digits or more stay text (as written, without
# leading zeros or a plus sign): every reader (tf.data, an app) holds a
# shorter one in 64 bits.
MAX_WHOLE = 10**18


def canonical(value):
    """The key a raw value is looked up by: an int, a str, or `MISSING`.

    Args:
        value: a cell as read: str, int, float, bool, None or a NumPy
            scalar.

    Returns:
        int for a whole number (`"007"` -> 7, `7.0` -> 7), the stripped
        str for other text, `MISSING` for an empty cell, None or NaN.

    Example:

    ```python
    canonical(" 007 ")  # 7
    canonical("u42")    # "u42"
    ```
    """
    if value is None:
        return MISSING
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return _whole(int(value))
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return MISSING
        if float(value).is_integer():
            return _whole(int(value))
        return repr(float(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    text = str(value).strip()
    if not text:
        return MISSING
    return _whole(int(text)) if WHOLE_NUMBER.fullmatch(text) else text


def _whole(number):
    return number if abs(number) < MAX_WHOLE else str(number)


def key_for(value, text_keys):
    """`canonical(value)` as a key of a vocabulary of str or int values."""
    key = canonical(value)
    if key is MISSING:
        return MISSING
    if text_keys:
        return str(key)
    return key if isinstance(key, int) else MISSING


class ValueCounts:
    """How often each raw value of one column occurs, merged over chunks.

    Example:

    ```python
    counts = ValueCounts()
    counts.add(np.array(["u1", "u2", "u1"], object))
    counts.vocabulary()  # ("u1", "u2")
    ```
    """

    def __init__(self):
        self._counts = None
        self._keys = None  # `keys()`, until the next `add`

    def add(self, values):
        """Counts one chunk's cells (an int64 array or an object array)."""
        counts = pd.Series(values).value_counts(sort=False, dropna=True)
        self._keys = None
        if self._counts is None:
            self._counts = counts
        else:
            self._counts = self._counts.add(counts, fill_value=0)

    def keys(self):
        """`{canonical key: count}` (cells that differ only in spacing or
        leading zeros merged); missing cells left out."""
        if self._keys is None:
            merged = {}
            for value, count in (() if self._counts is None
                                 else self._counts.items()):
                key = canonical(value)
                if key is not MISSING:
                    merged[key] = merged.get(key, 0) + int(count)
            self._keys = merged
        return dict(self._keys)

    def vocabulary(self, min_count=1, max_tokens=None):
        """The vocabulary: values seen `min_count` times or more, most
        frequent first, at most `max_tokens` of them.

        Args:
            min_count: int >= 1. Rarer values read as unknown (id 0), so
                the model learns what to do with one. Defaults to `1`.
            max_tokens: int or None. At most this many values (the most
                frequent). Defaults to `None`: all.

        Returns:
            tuple of int (when every value is a whole number) or of str.
        """
        counts = self.keys()
        if any(isinstance(key, str) for key in counts):
            text = {}
            for key, count in counts.items():
                text[str(key)] = text.get(str(key), 0) + count
            counts = text
        kept = sorted((key for key, count in counts.items()
                       if count >= min_count),
                      key=lambda key: (-counts[key], key))
        return tuple(kept[:max_tokens])

    def distinct(self):
        """How many distinct values the column holds."""
        return len(self.keys())

    def total(self):
        """How many cells were counted, missing ones left out."""
        return sum(self.keys().values())


def lookup(values, vocabulary):
    """The ids of raw values: `vocabulary[i]` -> `i + 1`, others -> 0.

    Args:
        values: array-like of raw cells (any of the types `canonical`
            takes).
        vocabulary: tuple of str or of int, as `Feature.vocabulary`.

    Returns:
        int32 NumPy array of ids, one per value.

    Example:

    ```python
    lookup(["u2", "u9", None], ("u1", "u2"))  # array([2, 0, 0])
    ```
    """
    text_keys = isinstance(vocabulary[0], str)
    ids = {key: i + 1 for i, key in enumerate(vocabulary)}
    # The Python work is per distinct value; the rows are one take.
    codes, uniques = pd.factorize(pd.Series(np.asarray(values, object)),
                                  use_na_sentinel=True)
    table = np.array(
        [ids.get(key_for(u, text_keys), 0) for u in uniques] + [0],
        np.int32,
    )
    # Code -1 (a null) reads the trailing 0.
    return table[codes]


def split_cell(value, separator):
    """The values of one list cell: split on `separator`, blanks dropped.

    Args:
        value: a str (`"Action|Comedy"`), a list-like of values (a
            DataFrame or Parquet list cell), or a missing cell.
        separator: str.

    Returns:
        list of raw values (an empty list for a missing or empty cell).

    Example:

    ```python
    split_cell("Action| Comedy||", "|")  # ["Action", " Comedy"]
    ```
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        tokens = list(value)
    elif canonical(value) is MISSING:
        return []
    else:
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        tokens = str(value).split(separator)
    return [t for t in tokens if canonical(t) is not MISSING]


def lookup_lists(cells, length, ids_of):
    """Ids of list cells, padded with 0: `(len(cells), length)` int32.

    Args:
        cells: sequence of lists of raw values (`split_cell`).
        length: int. Values kept per row (the checks refuse longer rows).
        ids_of: callable. An object array of raw values -> their int32
            ids, e.g. `lambda v: lookup(v, vocabulary)`.

    Returns:
        int32 NumPy array; unknown values and padding are 0.
    """
    sizes = np.array([min(len(c), length) for c in cells], np.int64)
    flat = [v for cell in cells for v in cell[:length]]
    ids = np.zeros((len(cells), length), np.int32)
    if flat:
        rows = np.repeat(np.arange(len(cells)), sizes)
        columns = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes,
                                                   sizes)
        ids[rows, columns] = ids_of(np.array(flat, object))
    return ids
