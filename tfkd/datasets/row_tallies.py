"""What `RowChecks` keeps of each column: first bad rows, running moments,
and the class of each cell of a text column."""

import dataclasses
import math

import numpy as np
import pandas as pd

from tfkd.datasets.vocabulary import MISSING
from tfkd.datasets.vocabulary import canonical

# What a cell of a text column is: see `classify`.
CELL_CLASSES = ("missing", "whole_number", "number", "text")


def more_rows(bad):
    """`" (and N more rows)"` for a mask with N + 1 bad rows, else `""`."""
    return and_more(int(np.count_nonzero(bad)) - 1)


def and_more(extra):
    return f" (and {extra} more rows)" if extra else ""


def classify(values):
    """Each cell's class (an index into `CELL_CLASSES`), worked out once
    per distinct value."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object),
                                  use_na_sentinel=True)
    classes = [_cell_class(canonical(u)) for u in uniques] + [0]
    return np.asarray(classes, np.int8)[codes]


def _cell_class(key):
    if key is MISSING:
        return 0
    if isinstance(key, int):
        return 1
    try:
        float(key)
    except ValueError:
        return 3
    return 2


@dataclasses.dataclass
class Bad:
    """The first row that breaks a rule, and how many rows do."""

    where: str
    value: object
    count: int


@dataclasses.dataclass
class Moments:
    """Count, mean and squared deviations (merged as Chan et al.), range."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    where_high: str = ""

    def add(self, values, where):
        # Non-finite values make NaN moments; those rows are refused anyway.
        with np.errstate(invalid="ignore", over="ignore"):
            self._merge(values)
        self.low = min(self.low, float(np.min(values)))
        # The first row holding the largest value, as np.argmax finds it.
        if np.max(values) > self.high:
            i = int(np.argmax(values))
            self.high, self.where_high = float(values[i]), where(i)

    def _merge(self, values):
        # One chunk gives exactly np.mean / np.std, as from_files had.
        mean = np.mean(values)
        m2 = np.sum((values - mean) ** 2)
        n, total = len(values), self.count + len(values)
        delta = mean - self.mean
        if self.count:
            mean = self.mean + delta * n / total
            m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count, self.mean, self.m2 = total, float(mean), float(m2)

    @property
    def std(self):
        return float(np.sqrt(self.m2 / self.count))
