"""How the loaders read categorical columns: vocabulary limits, the
separators of list columns and hashed columns, checked once for every
loader."""

import dataclasses

from tfkd._internal.arguments import validate_positive_int
from tfkd.datasets.feature_spec import MAX_HASH_BUCKETS


@dataclasses.dataclass(frozen=True)
class ColumnSettings:
    """Vocabulary limits, list and hashed columns, as the loaders take
    them.

    Args:
        min_count: int. A built vocabulary keeps values seen this often in
            the training rows.
        max_tokens: int or None. At most this many values per built
            vocabulary.
        separators: dict. `{column: separator}` of the list columns.
        hash_buckets: dict. `{column: buckets}` of the hashed columns.
    """

    min_count: int = 1
    max_tokens: int | None = None
    separators: dict = dataclasses.field(default_factory=dict)
    hash_buckets: dict = dataclasses.field(default_factory=dict)


def column_settings(spec, label, min_count=1, max_tokens=None,
                    list_columns=None, hash_columns=None):
    """Checks the loaders' column arguments; returns `ColumnSettings`.

    With a spec, the list and hashed columns are its features with a
    `separator` and with `hash_buckets`; `list_columns` and
    `hash_columns`, if given too, must say the same.

    Args:
        spec: `FeatureSpec` or None.
        label: str. The label column (never a list).
        min_count: int >= 1. Defaults to `1`.
        max_tokens: int >= 1 or None. Defaults to `None`.
        list_columns: dict or None. `{column: separator}`, e.g.
            `{"genres": "|"}`. Defaults to `None`.
        hash_columns: dict or None. `{column: buckets}`, e.g.
            `{"session": 2**20}`: the column's values are hashed to ids
            `1..buckets` instead of getting a vocabulary
            (`tfkd.datasets.id_hashing`). Defaults to `None`.

    Returns:
        `ColumnSettings`.

    Raises:
        TypeError, ValueError: naming the argument and what was received.

    Example:

    ```python
    column_settings(None, "clicked", list_columns={"genres": "|"})
    ```
    """
    validate_positive_int("min_count", min_count)
    if max_tokens is not None:
        validate_positive_int("max_tokens", max_tokens)
    if list_columns is not None and not isinstance(list_columns, dict):
        raise TypeError(
            "`list_columns` must be a dict of column to separator, e.g. "
            "{'genres': '|'}. Received: "
            f"{type(list_columns).__name__}"
        )
    for name, separator in (list_columns or {}).items():
        if not isinstance(separator, str) or not separator:
            raise ValueError(
                f"The separator of list column {name!r} must be a non-empty "
                f"str. Received: {separator!r}"
            )
        if name == label:
            raise ValueError(
                f"The label column {name!r} cannot be a list column."
            )
    _check_hash_columns(hash_columns, label)
    separators = dict(list_columns or {})
    buckets = dict(hash_columns or {})
    if spec is not None:
        separators = _from_spec(spec, "list_columns", list_columns,
                                "separator", "list")
        buckets = _from_spec(spec, "hash_columns", hash_columns,
                             "hash_buckets", "hashed")
    return ColumnSettings(min_count, max_tokens, separators, buckets)


def _check_hash_columns(hash_columns, label):
    if hash_columns is None:
        return
    if not isinstance(hash_columns, dict):
        raise TypeError(
            "`hash_columns` must be a dict of column to bucket count, e.g. "
            f"{{'session': 2**20}}. Received: {type(hash_columns).__name__}"
        )
    for name, buckets in hash_columns.items():
        if (isinstance(buckets, bool) or not isinstance(buckets, int)
                or not 1 <= buckets <= MAX_HASH_BUCKETS):
            raise ValueError(
                f"The bucket count of hashed column {name!r} must be an "
                f"int from 1 to {MAX_HASH_BUCKETS:,}. Received: {buckets!r}"
            )
        if name == label:
            raise ValueError(
                f"The label column {name!r} cannot be a hashed column."
            )


def _from_spec(spec, argument, given, field, kind):
    # The spec says how its columns are read; an argument may only agree.
    own = {f.name: getattr(f, field) for f in spec.features
           if getattr(f, field) is not None}
    if given is not None and dict(given) != own:
        raise ValueError(
            f"`{argument}` and the spec's {kind} features differ. Received: "
            f"{argument}={dict(given)}, spec {own}; the spec's apply, leave "
            f"{argument} out."
        )
    return own


def check_list_columns(settings, columns, source):
    """Raises unless every list and hashed column is one of `columns`."""
    for kind, named in (("list", settings.separators),
                        ("hashed", settings.hash_buckets)):
        missing = [name for name in named if name not in columns]
        if missing:
            raise ValueError(
                f"{source} has no {kind} column "
                f"{', '.join(map(repr, missing))}. "
                f"Its columns: {', '.join(map(str, columns))}"
            )
