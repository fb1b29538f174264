"""Checks the rows of the user's files and infers their `FeatureSpec`.

`RowChecks` is fed the parsed rows one chunk at a time: the whole table at
once (`from_files`) or bounded chunks (`stream_files`). It keeps, for each
rule and column, the first bad row and how many rows break it, running
moments of every numeric column and the value counts of the training rows
of every categorical one, so both loaders raise the same message and infer
the same spec (and vocabularies) however the rows were chunked.
"""


import numpy as np

from tfkd.datasets.column_settings import ColumnSettings
from tfkd.datasets.feature_spec import Feature
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.row_tallies import CELL_CLASSES
from tfkd.datasets.row_tallies import Bad
from tfkd.datasets.row_tallies import Moments
from tfkd.datasets.row_tallies import and_more
from tfkd.datasets.row_tallies import classify
from tfkd.datasets.vocabulary import ValueCounts

LABEL_KIND_BY_TASK = {"ctr": "binary", "rating": "rating"}
# An integer column with larger values would need a table of that many
# rows: such ids get a vocabulary instead.
MAX_INFERRED_VOCABULARY = 1_000_000
# Fewer rows of a class cannot put one in each of train, val and test.
MIN_CLASS_ROWS = 3
# A built vocabulary with a value for this share of its training rows (of
# at least MIN_ROWS_FOR_UNIQUE_CHECK) is refused: ids of rows, not of
# things that recur.
UNIQUE_SHARE = 0.9
MIN_ROWS_FOR_UNIQUE_CHECK = 50
ID_RULE = (
    "ids must be >= 1, since tfkd models keep id 0 for unknown ids. Leave "
    "the spec out (or write a new one with --spec-out) and tfkd builds the "
    "column's vocabulary, or make it numeric in the spec"
)
FINITE_RULE = "every row needs a finite number"
WHOLE_ID_RULE = (
    "an id column needs whole numbers (make it numeric in a spec if it is "
    "a quantity)"
)
# Rules of a feature column, in the order they are reported.
FEATURE_RULES = ("finite", "whole", "at_least_one")
CATEGORICAL_ONLY = ("whole", "at_least_one")


def check_spec_lists(spec):
    """Raises if the spec has a list feature without a `separator` (a
    file column then holds one value per row)."""
    lists = [f.name for f in spec.features
             if f.is_list and f.separator is None]
    if lists:
        raise ValueError(
            "A file column holds one value per row, or a list split on a "
            "separator: give every list feature of the spec a "
            f"`separator`, or length 1. Received: lists {lists} without one"
        )


class RowChecks:
    """Checks rows chunk by chunk and gathers what the spec needs.

    Args:
        label: str. The label column.
        task: str. `"ctr"` (labels 0 or 1) or `"rating"`.
        settings: `ColumnSettings` or None. Vocabulary limits (values
            seen `min_count` times in the training rows, at most
            `max_tokens` of them), list columns and hashed columns (whose
            values are not counted). Defaults to `None`: the defaults.

    Example:

    ```python
    checks = RowChecks("clicked", "ctr")
    for frame, kinds, where, train in chunks:
        checks.add(frame, kinds, where, train)
    spec = checks.spec()  # raises on the first bad row, else infers
    ```
    """

    def __init__(self, label, task, settings=None):
        self.label = label
        self.task = task
        settings = settings or ColumnSettings()
        self.min_count = settings.min_count
        self.max_tokens = settings.max_tokens
        self.separators = settings.separators
        self.hash_buckets = settings.hash_buckets
        self._longest = {}
        self.rows = 0
        self.columns = None
        self.kinds = {}
        self._bad = {}
        self._moments = {}
        self._counts = {}

    def add(self, frame, kinds, where, train=None):
        """Takes one chunk of parsed rows.

        Args:
            frame: pandas DataFrame, one column per file column.
            kinds: dict. Each column's kind (`tabular_files.parse_frame`).
            where: callable. Chunk row `i` -> `"path row N"`.
            train: bool array or None. The rows of the training split,
                whose values make the vocabularies. None: every row.
        """
        if self.columns is None:
            self.columns = list(frame.columns)
        self.rows += len(frame)
        for name in frame.columns:
            kind = kinds[name]
            self.kinds.setdefault(name, set()).add(kind)
            if not len(frame):
                continue
            column = frame[name].to_numpy()
            if kind == "list":
                self._add_list(name, column, where, train)
                continue
            if (kind != "float" and name != self.label
                    and name not in self.hash_buckets):
                kept = column if train is None else column[train]
                self._counts.setdefault(name, ValueCounts()).add(kept)
            if kind == "text":
                classes = classify(column)
                for i, rule in enumerate(CELL_CLASSES):
                    self._tally((name, rule), classes == i, column, where)
                continue
            values = column.astype(np.float64)
            for rule, bad in self._rules(name, values):
                self._tally((name, rule), bad, values, where)
            self._moments.setdefault(name, Moments()).add(values, where)

    def _add_list(self, name, cells, where, train):
        lengths = np.fromiter(map(len, cells), np.int64, len(cells))
        if name not in self.hash_buckets:
            kept = cells if train is None else cells[train]
            flat = [v for cell in kept for v in cell]
            self._counts.setdefault(name, ValueCounts()).add(
                np.array(flat, object))
        i = int(np.argmax(lengths))
        if lengths[i] > self._longest.get(name, (0, ""))[0]:
            self._longest[name] = (int(lengths[i]), where(i))

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
        self._bad[key] = Bad(where(i), values[i], count)

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
        if spec is not None:
            check_spec_lists(spec)
            for feature in spec.features:
                self._check_feature(feature)
            return spec
        features = tuple(self._infer(name) for name in self.columns
                         if name != self.label)
        return FeatureSpec(features, self.task, self.label,
                           LABEL_KIND_BY_TASK[self.task])

    def _check_label(self):
        where = f"column '{self.label}' (the label)"
        bad = self._bad.get((self.label, "finite"))
        if bad is not None:
            raise ValueError(
                f"{bad.where}, {where} is {bad.value}"
                f"{and_more(bad.count - 1)}: every row needs a finite "
                "label; drop or fill those rows."
            )
        moments = self._moments[self.label]
        bad = self._bad.get((self.label, "binary"))
        if bad is not None:
            hint = "the ctr task needs labels 0 or 1."
            if moments.low >= 0:
                hint = (f"the labels run from {moments.low:g} to "
                        f"{moments.high:g}: they look like ratings; pass "
                        "task='rating' (--task rating), or map them to 0/1.")
            raise ValueError(
                f"{bad.where}, {where} is {bad.value:g}"
                f"{and_more(bad.count - 1)}: {hint}"
            )
        self._check_label_spread(where, moments)

    def _check_label_spread(self, where, moments):
        if moments.low == moments.high:
            raise ValueError(
                f"{where} is {moments.low:g} on all {moments.count:,} rows: "
                "a model learns nothing from it and no metric can be "
                "measured. Check the export that wrote the files (a filter "
                "on the label?), or pass the right --label."
            )
        if self.task != "ctr":
            return
        positives = int(round(moments.mean * moments.count))
        fewest = min(positives, moments.count - positives)
        if fewest < MIN_CLASS_ROWS:
            raise ValueError(
                f"{where} has {positives:,} positives and "
                f"{moments.count - positives:,} negatives: AUC needs "
                f"positives and negatives in val and test, so at least "
                f"{MIN_CLASS_ROWS} of each. Add rows of the rare class."
            )

    def _infer(self, name):
        kinds = self.kinds[name]
        if name in self.hash_buckets:
            return self._hashed_feature(name, kinds)
        if "float" in kinds or (name, "number") in self._bad:
            self._refuse_gaps(name, "a numeric column")
            self._refuse(name, ("finite",))
            moments = self._moments.get(name)
            if moments is None:
                raise ValueError(
                    f"Column '{name}' holds numbers as Python objects; "
                    "convert it with .astype(float) first."
                )
            std = moments.std
            return Feature(name, kind="numeric", mean=moments.mean,
                           std=std if std > 0 else 1.0)
        if "list" in kinds:
            feature = self._vocabulary_feature(name, one_per_row=False)
            return Feature(name, vocabulary=feature.vocabulary,
                           length=max(1, self._longest.get(name, (1,))[0]),
                           separator=self.separators[name])
        if kinds == {"integer"}:
            moments = self._moments[name]
            if moments.low >= 1 and moments.high < MAX_INFERRED_VOCABULARY:
                # Ids from 1 already: the values are the ids, as before.
                return Feature(name, int(moments.high) + 1)
        return self._vocabulary_feature(name)

    def _hashed_feature(self, name, kinds):
        if "float" in kinds:
            moments = self._moments[name]
            raise ValueError(
                f"Column '{name}' holds fractional numbers ({moments.low:g} "
                f"to {moments.high:g}): hashing is for ids. Leave it out of "
                "hash_columns (--hash-column) and it is a numeric feature."
            )
        if "list" not in kinds:
            return Feature(name, hash_buckets=self.hash_buckets[name])
        return Feature(name, hash_buckets=self.hash_buckets[name],
                       length=max(1, self._longest.get(name, (1,))[0]),
                       separator=self.separators[name])

    def _vocabulary_feature(self, name, one_per_row=True):
        counts = self._counts.get(name, ValueCounts())
        vocabulary = counts.vocabulary(self.min_count, self.max_tokens)
        if one_per_row:
            self._refuse_row_ids(name, len(vocabulary), counts.total())
        if len(vocabulary) >= MAX_INFERRED_VOCABULARY:
            raise ValueError(
                f"Column '{name}' holds {len(vocabulary):,} distinct values "
                f"in the training rows: a table of more than "
                f"{MAX_INFERRED_VOCABULARY - 1:,} ids. Hash it "
                f"(hash_columns={{'{name}': {_buckets(len(vocabulary))}}}, "
                f"--hash-column {name}={_buckets(len(vocabulary))}), keep "
                "the most frequent with max_tokens (--max-tokens), or drop "
                "rare ones with min_count (--min-count)."
            )
        if not vocabulary:
            raise ValueError(
                f"Column '{name}' has no value seen {self.min_count} times "
                "or more in the training rows (every cell would be "
                "unknown). Lower min_count (--min-count), or leave the "
                "column out."
            )
        return Feature(name, vocabulary=vocabulary)

    def _refuse_row_ids(self, name, distinct, cells):
        # Almost every row its own value: a timestamp or an event id, whose
        # embedding rows would each train on one example.
        if cells < MIN_ROWS_FOR_UNIQUE_CHECK or distinct < UNIQUE_SHARE * cells:
            return
        raise ValueError(
            f"Column '{name}' holds {distinct:,} distinct values in "
            f"{cells:,} training rows: almost every row its own id, which "
            "an embedding cannot learn (a timestamp, an event or row id?). "
            "Leave the column out, make it numeric in a spec, or keep "
            "repeated values only with min_count=2 (--min-count 2)."
        )

    def _check_feature(self, feature):
        name = feature.name
        if feature.is_numeric:
            self._refuse_gaps(name, "a numeric feature of the spec")
            self._refuse(name, ("finite",))
        elif feature.separator is not None:
            longest, where = self._longest.get(name, (0, ""))
            if longest > feature.length:
                raise ValueError(
                    f"{where}, column '{name}' holds {longest} values: the "
                    f"spec's list feature '{name}' takes at most "
                    f"{feature.length}. Shorten those lists, or write a new "
                    "spec (and train on it) with --spec-out."
                )
        elif not feature.is_mapped:
            self._refuse_text(name)
            self._refuse(name, FEATURE_RULES)
        # A feature with a vocabulary takes any cell: others are unknown;
        # a hashed one hashes any cell.

    def _refuse(self, name, rules):
        for rule in rules:
            bad = self._bad.get((name, rule))
            if bad is None:
                continue
            message = {"finite": FINITE_RULE, "whole": WHOLE_ID_RULE,
                       "at_least_one": ID_RULE}[rule]
            raise ValueError(
                f"{bad.where}, column '{name}' holds {float(bad.value):g}"
                f"{and_more(bad.count - 1)}: {message}."
            )

    def _refuse_gaps(self, name, what):
        # Numbers, but some cells empty or not numbers: fill, not guess.
        for rule in ("text", "missing"):
            bad = self._bad.get((name, rule))
            if bad is None:
                continue
            problem = (f"is not a number: {str(bad.value).strip()!r}"
                       if rule == "text" else "is empty"
                       + ("" if bad.value == "" else " (null)"))
            raise ValueError(
                f"{bad.where}, column '{name}' {problem}"
                f"{and_more(bad.count - 1)}: {what} needs a number in "
                "every row; fill or drop those rows."
            )

    def _refuse_text(self, name):
        for rule in ("text", "missing", "number"):
            bad = self._bad.get((name, rule))
            if bad is None:
                continue
            cell = "empty" if rule == "missing" else repr(bad.value)
            raise ValueError(
                f"{bad.where}, column '{name}' holds {cell}"
                f"{and_more(bad.count - 1)}, but the spec's feature "
                f"'{name}' has no vocabulary: its cells must be ids from "
                "1. Leave the spec out (or write a new one with "
                "--spec-out) and tfkd builds the column's vocabulary."
            )


def _buckets(values):
    # A power of two near 4x the values: few of them then share an id.
    return 1 << max(1, (4 * values - 1).bit_length())
