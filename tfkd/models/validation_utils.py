"""Argument checks shared by the model builders and layers."""


def validate_positive_int(name, value):
    """Raises unless `value` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")


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
