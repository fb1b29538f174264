"""Schema of the categorical id features a tfkd model consumes."""

import dataclasses
from typing import Any

LABEL_KINDS = ("binary", "rating", "implicit")


@dataclasses.dataclass(frozen=True)
class Feature:
    """One categorical id feature.

    Id 0 is reserved for unknown values and padding in every feature, so the
    real ids are `1..vocabulary_size - 1`.

    Args:
        name: str. The model input name, e.g. `"user_id"`.
        vocabulary_size: int. Number of embedding rows, including row 0.
        length: int. 1 for a scalar id; `> 1` for a padded list of ids where
            0 is padding (e.g. `genres`). Defaults to `1`.

    Raises:
        TypeError: if `name` is not a string.
        ValueError: if `vocabulary_size < 2` or `length < 1`.

    Example:

    ```python
    Feature("genres", vocabulary_size=20, length=6)
    ```
    """

    name: str
    vocabulary_size: int
    length: int = 1

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(
                "`name` must be a non-empty str. "
                f"Received: name={self.name!r}"
            )
        if int(self.vocabulary_size) < 2:
            raise ValueError(
                "`vocabulary_size` must be >= 2 (row 0 is unknown). "
                f"Received: vocabulary_size={self.vocabulary_size}"
            )
        if int(self.length) < 1:
            raise ValueError(
                f"`length` must be >= 1. Received: length={self.length}"
            )

    @property
    def is_list(self) -> bool:
        """Whether the feature is a padded list of ids."""
        return self.length > 1


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
        """Mapping from feature name to vocabulary size."""
        return {f.name: f.vocabulary_size for f in self.features}

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
            "features": [dataclasses.asdict(f) for f in self.features],
            "task": self.task,
            "label": self.label,
            "label_kind": self.label_kind,
        }

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "FeatureSpec":
        """Rebuilds a spec from `to_dict()` output (the dict is not changed).

        Args:
            config: dict. As returned by `to_dict()`.

        Returns:
            A `FeatureSpec`.
        """
        features = tuple(Feature(**dict(f)) for f in config["features"])
        return cls(
            features=features,
            task=config["task"],
            label=config["label"],
            label_kind=config["label_kind"],
        )
