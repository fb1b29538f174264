"""Argument checks shared across tfkd: one place for each rule."""

import numbers


def validate_positive_int(name, value):
    """Checks a count: an int (Python or NumPy) >= 1, not a bool.

    Args:
        name: str. The argument's name, for the message.
        value: the value received.

    Returns:
        `value` as a Python int.

    Raises:
        TypeError: if `value` is not an integer.
        ValueError: if `value` < 1.

    Example:

    ```python
    batch_size = validate_positive_int("batch_size", batch_size)
    ```
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
    return int(value)
