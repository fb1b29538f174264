"""Checks the rows of the user's files and infers their `FeatureSpec`.

`RowChecks` is fed the parsed rows one chunk at a time: the whole table at
once (`from_files`) or bounded chunks (`stream_files`). It keeps, for each
rule and column, the first bad row and how many rows break it, plus running
moments of every column, so both loaders raise the same message and infer
the same spec however the rows were chunked.
"""

import dataclasses
import math

import numpy as np

from tfkd.datasets.feature_spec import Feature
from tfkd.datasets.feature_spec import FeatureSpec

LABEL_KIND_BY_TASK = {"ctr": "binary", "rating": "rating"}
# An integer column with larger values would need a table of that many
# rows: more likely a count or an amount than an id.
MAX_INFERRED_VOCABULARY = 1_000_000
ID_RULE = (
    "ids must be >= 1, since tfkd models keep id 0 for unknown ids. Add 1 "
    "to the column's ids (here and in the requests your app sends), or "
    "make it numeric in a spec"
)
FINITE_RULE = "every row needs a finite number"
WHOLE_ID_RULE = (
    "an id column needs whole numbers (make it numeric in a spec if it is "
    "a quantity)"
)
# Rules of a feature column, in the order they are reported.
FEATURE_RULES = ("finite", "whole", "at_least_one")
CATEGORICAL_ONLY = ("whole", "at_least_one")


def more_rows(bad):
    """`" (and N more rows)"` for a mask with N + 1 bad rows, else `""`."""
    return _and_more(int(np.count_nonzero(bad)) - 1)


def _and_more(extra):
    return f" (and {extra} more rows)" if extra else ""


def feature_kinds(spec, columns, integer, label):
    """`{column: kind}`: the spec's, or integer columns categorical.

    Raises:
        ValueError: if the spec has a list feature (a file column holds
            one value per row).
    """
    if spec is None:
        return {
            name: "categorical" if integer[name] else "numeric"
            for name in columns
            if name != label
        }
    lists = [f.name for f in spec.features if f.is_list]
    if lists:
        raise ValueError(
            "A file column holds one value per row: give every feature of "
            f"the spec length 1. Received: lists {lists}"
        )
    return {feature.name: feature.kind for feature in spec.features}


@dataclasses.dataclass
class _Bad:
    """The first row that breaks a rule, and how many rows do."""

    where: str
    value: float
    count: int


@dataclasses.dataclass
class _Moments:
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


class RowChecks:
    """Checks rows chunk by chunk and gathers what the spec needs.

    Args:
        label: str. The label column.
        task: str. `"ctr"` (labels 0 or 1) or `"rating"`.

    Example:

    ```python
    checks = RowChecks("clicked", "ctr")
    for frame, where, integer in chunks:
        checks.add(frame, integer, where)
    spec = checks.spec()  # raises on the first bad row, else infers
    ```
    """

    def __init__(self, label, task):
        self.label = label
        self.task = task
        self.rows = 0
        self.columns = None
        self.integer = {}
        self._bad = {}
        self._moments = {}

    def add(self, frame, integer, where):
        """Takes one chunk of parsed rows.

        Args:
            frame: pandas DataFrame of numbers, one column per file column.
            integer: dict. Whether each column parsed as integers.
            where: callable. Chunk row `i` -> `"path row N"`.
        """
        if self.columns is None:
            self.columns = list(frame.columns)
        self.rows += len(frame)
        for name in frame.columns:
            self.integer[name] = self.integer.get(name, True) and integer[name]
            if not len(frame):
                continue
            values = frame[name].to_numpy(np.float64)
            for rule, bad in self._rules(name, values):
                self._tally((name, rule), bad, values, where)
            self._moments.setdefault(name, _Moments()).add(values, where)

    def _rules(self, name, values):
        finite = np.isfinite(values)
        if name == self.label:
            yield "finite", ~finite
            if self.task == "ctr":
                yield "binary", (values != 0) & (values != 1)
            return
        yield "finite", ~finite
        yield "whole", finite & (values != np.floor(values))
        yield "at_least_one", values < 1

    def _tally(self, key, bad, values, where):
        count = int(np.count_nonzero(bad))
        if not count:
            return
        if key in self._bad:
            self._bad[key].count += count
            return
        i = int(np.argmax(bad))
        self._bad[key] = _Bad(where(i), float(values[i]), count)

    def spec(self, spec=None):
        """Raises on the first bad row, else returns the spec.

        Label problems come first, then each feature's in column order,
        as `from_files` has always reported them.

        Args:
            spec: `FeatureSpec` or None. The user's spec, returned as it
                is once its columns pass; None infers one.

        Returns:
            `FeatureSpec`.

        Raises:
            ValueError: naming the file, row and column of the first bad
                row of the first rule broken, and how many more break it.
        """
        self._check_label()
        kinds = feature_kinds(spec, self.columns, self.integer, self.label)
        for name, kind in kinds.items():
            for rule in FEATURE_RULES:
                bad = self._bad.get((name, rule))
                if bad is None or (kind == "numeric"
                                   and rule in CATEGORICAL_ONLY):
                    continue
                message = {"finite": FINITE_RULE, "whole": WHOLE_ID_RULE,
                           "at_least_one": ID_RULE}[rule]
                raise ValueError(
                    f"{bad.where}, column '{name}' holds {bad.value:g}"
                    f"{_and_more(bad.count - 1)}: {message}."
                )
        return spec or self._infer_spec(kinds)

    def _check_label(self):
        where = f"column '{self.label}' (the label)"
        bad = self._bad.get((self.label, "finite"))
        if bad is not None:
            raise ValueError(
                f"{bad.where}, {where} is {bad.value}"
                f"{_and_more(bad.count - 1)}: every row needs a finite "
                "label; drop or fill those rows."
            )
        bad = self._bad.get((self.label, "binary"))
        if bad is None:
            return
        moments = self._moments[self.label]
        hint = "the ctr task needs labels 0 or 1."
        if moments.low >= 0:
            hint = (f"the labels run from {moments.low:g} to "
                    f"{moments.high:g}: they look like ratings; pass "
                    "task='rating' (--task rating), or map them to 0/1.")
        raise ValueError(
            f"{bad.where}, {where} is {bad.value:g}"
            f"{_and_more(bad.count - 1)}: {hint}"
        )

    def _infer_spec(self, kinds):
        features = []
        for name, kind in kinds.items():
            moments = self._moments[name]
            if kind == "numeric":
                std = moments.std
                features.append(Feature(
                    name, kind="numeric", mean=moments.mean,
                    std=std if std > 0 else 1.0,
                ))
                continue
            top = int(moments.high)
            if top + 1 > MAX_INFERRED_VOCABULARY:
                raise ValueError(
                    f"{moments.where_high}, column '{name}' holds id {top}: "
                    f"as an id feature that is a table of {top + 1:,} rows "
                    f"(at most {MAX_INFERRED_VOCABULARY:,}). If it is a "
                    "quantity, make it numeric in a spec; if ids, number "
                    "them densely from 1."
                )
            features.append(Feature(name, top + 1))
        task = self.task
        return FeatureSpec(tuple(features), task, self.label,
                           LABEL_KIND_BY_TASK[task])
