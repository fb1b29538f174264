"""Schema of the features (ids and numbers) a tfkd model consumes."""

import dataclasses
import math
import numbers
from typing import Any

LABEL_KINDS = ("binary", "rating", "implicit")
FEATURE_KINDS = ("categorical", "numeric")
SPEC_KEYS = ("features", "task", "label", "label_kind")
# Hashed ids 1..N and the table's row count N + 1 fit in int32.
MAX_HASH_BUCKETS = 2**31 - 2


@dataclasses.dataclass(frozen=True)
class Feature:
    """One model input: a categorical id feature or a numeric feature.

    A `"categorical"` feature is embedded. Id 0 is reserved for unknown
    values and padding in every such feature, so the real ids are
    `1..vocabulary_size - 1`. With a `vocabulary`, the raw values (text,
    ids from 0, sparse 64-bit ids) are mapped to those ids: value
    `vocabulary[i]` is id `i + 1` and every other value, or a missing
    cell, is id 0. With `hash_buckets`, a value's id is its hash
    (`tfkd.datasets.id_hashing`), for columns with too many values to
    list. Without either, the values are the ids. A `"numeric"`
    feature is one float per example, fed to the model as
    `(value - mean) / std` next to the embeddings.

    Args:
        name: str. The model input name, e.g. `"user_id"`.
        vocabulary_size: int or None. Categorical features: number of
            embedding rows, including row 0; defaults to
            `len(vocabulary) + 1` when a vocabulary is given (a larger
            table is allowed: its extra rows are never read). Numeric
            features: None. Defaults to `None`.
        length: int. 1 for a scalar id; `> 1` for a padded list of ids where
            0 is padding (e.g. `genres`). Numeric features: 1. Defaults to
            `1`.
        kind: str. `"categorical"` or `"numeric"`. Defaults to
            `"categorical"`.
        mean: float. Numeric features: the value that maps to 0. Defaults
            to `0.0`.
        std: float > 0. Numeric features: the value range that maps to 1.
            Defaults to `1.0`.
        vocabulary: tuple or None. Categorical features: the raw values,
            all `str` or all `int`, distinct, most frequent first (as the
            loaders build it). Defaults to `None` (the values are ids).
        separator: str or None. A list feature read from one text cell
            per row (`"Action|Comedy"` with `"|"`): the cell is split on
            it, each value looked up in `vocabulary`, and the ids padded
            with 0 to `length` (an unknown value is 0 too: ignored like
            padding by a pooled list). Needs a vocabulary or
            `hash_buckets`. Defaults to `None`.
        hash_buckets: int or None. Categorical features without a
            vocabulary: raw values are hashed to ids `1..hash_buckets`
            (a missing cell is 0); `vocabulary_size` defaults to
            `hash_buckets + 1`. Defaults to `None`.

    Raises:
        TypeError: if `name` is not a string.
        ValueError: if a categorical feature has `vocabulary_size < 2` or
            `length < 1`, a numeric one a vocabulary, a length other than
            1 or a `std` that is not a positive number, or `kind` is
            unknown; if a vocabulary mixes types, repeats a value or does
            not fit in `vocabulary_size`; if `hash_buckets` is not an
            int >= 1 or comes with a vocabulary.

    Example:

    ```python
    Feature("genres", vocabulary_size=20, length=6)
    Feature("price", kind="numeric", mean=9.5, std=4.0)
    Feature("track", vocabulary=("song67", "song3"))  # vocabulary_size 3
    Feature("genres", vocabulary=("Drama", "Comedy"), length=3,
            separator="|")
    Feature("session", hash_buckets=2**20)  # vocabulary_size 2**20 + 1
    ```
    """

    name: str
    vocabulary_size: int | None = None
    length: int = 1
    kind: str = "categorical"
    mean: float = 0.0
    std: float = 1.0
    # A million values would fill the repr; `vocabulary_size` tells.
    vocabulary: tuple | None = dataclasses.field(default=None, repr=False)
    separator: str | None = None
    hash_buckets: int | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(
                "`name` must be a non-empty str. "
                f"Received: name={self.name!r}"
            )
        if self.kind not in FEATURE_KINDS:
            raise ValueError(
                f"`kind` of feature '{self.name}' must be one of "
                f"{FEATURE_KINDS}. Received: kind={self.kind!r}"
            )
        if self.kind == "numeric":
            self._check_numeric()
            return
        if self.vocabulary is not None:
            self._check_vocabulary()
        if self.hash_buckets is not None:
            self._check_hash_buckets()
        if self.separator is not None and (
            not isinstance(self.separator, str) or not self.separator
            or not self.is_mapped
        ):
            raise ValueError(
                f"`separator` of feature '{self.name}' must be a non-empty "
                "str, on a feature with a vocabulary or hash_buckets (the "
                f"values it splits). Received: separator={self.separator!r},"
                f" vocabulary of {_count(self.vocabulary)} values, "
                f"hash_buckets={self.hash_buckets}"
            )
        if self.vocabulary_size is None or int(self.vocabulary_size) < 2:
            raise ValueError(
                "`vocabulary_size` must be >= 2 (row 0 is unknown). "
                f"Received: vocabulary_size={self.vocabulary_size}"
            )
        if int(self.length) < 1:
            raise ValueError(
                f"`length` must be >= 1. Received: length={self.length}"
            )
        if (self.mean, self.std) != (0.0, 1.0):
            raise ValueError(
                f"`mean` and `std` apply to numeric features; set "
                f"kind='numeric' on feature '{self.name}' or leave them "
                f"out. Received: mean={self.mean}, std={self.std}"
            )

    def _check_numeric(self):
        if (self.vocabulary_size is not None or self.length != 1
                or self.is_mapped or self.separator is not None):
            raise ValueError(
                f"Numeric feature '{self.name}' is one float: it takes no "
                "`vocabulary_size`, `vocabulary` or `hash_buckets`, and "
                f"`length` 1. Received: vocabulary_size="
                f"{self.vocabulary_size}, length={self.length}, vocabulary "
                f"of {_count(self.vocabulary)} values, hash_buckets="
                f"{self.hash_buckets}"
            )
        if not (math.isfinite(self.mean) and math.isfinite(self.std)
                and self.std > 0):
            raise ValueError(
                f"Numeric feature '{self.name}' needs a finite `mean` and "
                f"a `std` > 0. Received: mean={self.mean}, std={self.std}"
            )

    def _check_vocabulary(self):
        vocabulary = self.vocabulary
        if isinstance(vocabulary, (str, bytes)) or not hasattr(
            vocabulary, "__iter__"
        ):
            raise TypeError(
                f"`vocabulary` of feature '{self.name}' must be a list of "
                f"values. Received: {type(vocabulary).__name__}"
            )
        vocabulary = tuple(
            int(v) if isinstance(v, numbers.Integral) else v
            for v in vocabulary
        )
        object.__setattr__(self, "vocabulary", vocabulary)
        types = {bool if isinstance(v, bool) else type(v) for v in vocabulary}
        if not vocabulary or len(types) != 1 or types - {str, int}:
            raise ValueError(
                f"`vocabulary` of feature '{self.name}' must hold at least "
                "one value, all str or all int. Received: types "
                f"{sorted(t.__name__ for t in types)}"
            )
        if len(set(vocabulary)) != len(vocabulary):
            seen = set()
            repeated = next(v for v in vocabulary
                            if v in seen or seen.add(v))
            raise ValueError(
                f"`vocabulary` of feature '{self.name}' repeats "
                f"{repeated!r}: each value gets one id."
            )
        if self.vocabulary_size is None:
            object.__setattr__(self, "vocabulary_size", len(vocabulary) + 1)
        elif int(self.vocabulary_size) < len(vocabulary) + 1:
            raise ValueError(
                f"Feature '{self.name}' has {len(vocabulary)} values in its "
                f"vocabulary, ids 1..{len(vocabulary)}: `vocabulary_size` "
                f"must be at least {len(vocabulary) + 1}. Received: "
                f"vocabulary_size={self.vocabulary_size}"
            )

    def _check_hash_buckets(self):
        buckets = self.hash_buckets
        if (isinstance(buckets, bool)
                or not isinstance(buckets, numbers.Integral)
                or not 1 <= buckets <= MAX_HASH_BUCKETS
                or self.vocabulary is not None):
            raise ValueError(
                f"`hash_buckets` of feature '{self.name}' must be an int "
                f"from 1 to {MAX_HASH_BUCKETS:,} (ids are int32), on a "
                "feature without a vocabulary (a value has one id or the "
                f"other). Received: hash_buckets={buckets!r}, "
                f"vocabulary of {_count(self.vocabulary)} values"
            )
        object.__setattr__(self, "hash_buckets", int(buckets))
        if self.vocabulary_size is None:
            object.__setattr__(self, "vocabulary_size", int(buckets) + 1)
        elif int(self.vocabulary_size) < buckets + 1:
            raise ValueError(
                f"Feature '{self.name}' hashes to ids 1..{buckets}: "
                f"`vocabulary_size` must be at least {buckets + 1}. "
                f"Received: vocabulary_size={self.vocabulary_size}"
            )

    @property
    def is_mapped(self) -> bool:
        """Whether raw values are mapped to ids (a vocabulary or
        hashing) rather than being the ids."""
        return self.vocabulary is not None or self.hash_buckets is not None

    @property
    def is_list(self) -> bool:
        """Whether the feature is a padded list of ids."""
        return self.length > 1 or self.separator is not None

    @property
    def is_numeric(self) -> bool:
        """Whether the feature is a float rather than an id."""
        return self.kind == "numeric"

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict; `Feature(**d)` inverts it.

        Categorical features write `name`, `vocabulary_size`, `length`,
        `kind` and, when they have them, `vocabulary` (a list), `separator`
        and `hash_buckets`; numeric ones
        `name`, `kind`, `mean` and `std`.
        """
        if self.is_numeric:
            return {"name": self.name, "kind": self.kind,
                    "mean": float(self.mean), "std": float(self.std)}
        config: dict[str, Any] = {
            "name": self.name, "vocabulary_size": self.vocabulary_size,
            "length": self.length, "kind": self.kind,
        }
        if self.vocabulary is not None:
            config["vocabulary"] = list(self.vocabulary)
        if self.separator is not None:
            config["separator"] = self.separator
        if self.hash_buckets is not None:
            config["hash_buckets"] = self.hash_buckets
        return config



@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """The features, task and label of a data set.

    The exporter writes `to_dict()` into the model's JSON sidecar, so the
    spec is JSON-safe and `from_dict(to_dict())` rebuilds an equal spec.

    Args:
        features: tuple of `Feature`. The model inputs, in input order.
        task: str. `"ctr"`, `"rating"` or `"retrieval"`.
        label: str. Name of the label column in the frames.
        label_kind: str. `"binary"` (0/1), `"rating"` (1..5) or `"implicit"`
            (every row is a positive interaction).

    Raises:
        ValueError: on an unknown `label_kind` or duplicate feature names.

    Example:

    ```python
    spec = FeatureSpec(
        features=(Feature("user_id", 944), Feature("item_id", 1683)),
        task="ctr",
        label="label",
        label_kind="binary",
    )
    spec.vocabulary_sizes  # {"user_id": 944, "item_id": 1683}
    ```
    """

    features: tuple[Feature, ...]
    task: str
    label: str
    label_kind: str

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        for feature in self.features:
            if not isinstance(feature, Feature):
                raise TypeError(
                    "`features` must hold `Feature` objects. "
                    f"Received: {type(feature).__name__}"
                )
        if len(set(self.names)) != len(self.names):
            raise ValueError(
                "Feature names must be unique. "
                f"Received: names={list(self.names)}"
            )
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(
                f"`label_kind` must be one of {LABEL_KINDS}. "
                f"Received: label_kind={self.label_kind!r}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names, in input order."""
        return tuple(feature.name for feature in self.features)

    @property
    def vocabulary_sizes(self) -> dict[str, int]:
        """Mapping from categorical feature name to vocabulary size."""
        return {
            f.name: int(f.vocabulary_size)
            for f in self.features
            if not f.is_numeric and f.vocabulary_size is not None
        }

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(
            f"No feature named {name!r}. Available: {list(self.names)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict; `FeatureSpec.from_dict` inverts it."""
        return {
            "features": [f.to_dict() for f in self.features],
            "task": self.task,
            "label": self.label,
            "label_kind": self.label_kind,
        }

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "FeatureSpec":
        """Rebuilds a spec from `to_dict()` output (the dict is not changed).

        Args:
            config: dict. As returned by `to_dict()`, or written by hand in
                the same form (a feature without `kind` is categorical).

        Returns:
            A `FeatureSpec`.

        Raises:
            ValueError: if a key is missing or a feature entry is not one
                `Feature` accepts; the message names the entry.
        """
        missing = [k for k in SPEC_KEYS if k not in config]
        if missing:
            raise ValueError(
                f"A feature spec needs the keys {list(SPEC_KEYS)}. "
                f"Received: keys {sorted(config)}, missing {missing}"
            )
        features = []
        for i, entry in enumerate(config["features"]):
            try:
                features.append(Feature(**dict(entry)))
            except TypeError as e:
                raise ValueError(
                    f"Feature {i} of the spec is not one `Feature` takes "
                    "(keys: name, vocabulary_size, length, kind, mean, "
                    "std, vocabulary, separator, hash_buckets). Received: "
                    f"{_short(entry)} ({e})"
                ) from e
        return cls(
            features=tuple(features),
            task=config["task"],
            label=config["label"],
            label_kind=config["label_kind"],
        )


def _short(entry):
    # A vocabulary may hold a million values: not all in one message.
    text = repr(entry)
    return text if len(text) <= 200 else text[:200] + "...}"

def _count(values):
    return "no" if values is None else len(values)
