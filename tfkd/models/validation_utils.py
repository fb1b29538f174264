"""Argument checks of the model builders and layers."""

from tfkd._internal.arguments import validate_positive_int


def validate_hidden(hidden):
    """Returns `hidden` as a tuple of ints >= 1."""
    if isinstance(hidden, int):
        raise TypeError(
            "`hidden` must be a sequence of layer widths, e.g. (64, 32). "
            f"Received: hidden={hidden!r}"
        )
    hidden = tuple(hidden)
    for width in hidden:
        validate_positive_int("hidden", width)
    return hidden
