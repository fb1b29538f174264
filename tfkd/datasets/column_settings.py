"""How the loaders read categorical columns: vocabulary limits and the
separators of list columns, checked once for every loader."""

import dataclasses

from tfkd._internal.arguments import validate_positive_int


@dataclasses.dataclass(frozen=True)
class ColumnSettings:
    """Vocabulary limits and list columns, as the loaders take them.

    Args:
        min_count: int. A built vocabulary keeps values seen this often in
            the training rows.
        max_tokens: int or None. At most this many values per built
            vocabulary.
        separators: dict. `{column: separator}` of the list columns.
    """

    min_count: int = 1
    max_tokens: int | None = None
    separators: dict = dataclasses.field(default_factory=dict)


def column_settings(spec, label, min_count=1, max_tokens=None,
                    list_columns=None):
    """Checks the loaders' column arguments; returns `ColumnSettings`.

    With a spec, the list columns are its features with a `separator`;
    `list_columns`, if given too, must say the same.

    Args:
        spec: `FeatureSpec` or None.
        label: str. The label column (never a list).
        min_count: int >= 1. Defaults to `1`.
        max_tokens: int >= 1 or None. Defaults to `None`.
        list_columns: dict or None. `{column: separator}`, e.g.
            `{"genres": "|"}`. Defaults to `None`.

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
    separators = dict(list_columns or {})
    if spec is not None:
        own = {f.name: f.separator for f in spec.features
               if f.separator is not None}
        if list_columns is not None and separators != own:
            raise ValueError(
                "`list_columns` and the spec's list features differ. "
                f"Received: list_columns={separators}, spec {own}; the "
                "spec's separators apply, leave list_columns out."
            )
        separators = own
    return ColumnSettings(min_count, max_tokens, separators)


def check_list_columns(separators, columns, source):
    """Raises unless every list column is one of `columns`."""
    missing = [name for name in separators if name not in columns]
    if missing:
        raise ValueError(
            f"{source} has no list column {', '.join(map(repr, missing))}. "
            f"Its columns: {', '.join(map(str, columns))}"
        )
