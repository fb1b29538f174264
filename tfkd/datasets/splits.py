"""Train/val/test splits of an interaction frame."""

import numpy as np

SPLITS = ("random", "temporal", "leave_one_out")


def validate_fractions(val_fraction, test_fraction):
    """Raises `ValueError` unless both fractions are in (0, 1), sum < 1."""
    for name, value in (
        ("val_fraction", val_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0.0 < value < 1.0:
            raise ValueError(
                f"`{name}` must be in (0, 1). Received: {name}={value}"
            )
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            "`val_fraction + test_fraction` must be < 1. Received: "
            f"val_fraction={val_fraction}, test_fraction={test_fraction}"
        )


def _cut(frame, val_fraction, test_fraction):
    n = len(frame)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    n_train = n - n_val - n_test
    parts = (
        frame.iloc[:n_train],
        frame.iloc[n_train : n_train + n_val],
        frame.iloc[n_train + n_val :],
    )
    names = ("train", "val", "test")
    return {
        k: p.reset_index(drop=True) for k, p in zip(names, parts, strict=True)
    }


def random_split(frame, val_fraction=0.1, test_fraction=0.1, seed=42):
    """Shuffles rows with `seed`, then cuts train / val / test.

    Args:
        frame: pandas DataFrame.
        val_fraction: float. Share of rows in val. Defaults to `0.1`.
        test_fraction: float. Share of rows in test. Defaults to `0.1`.
        seed: int. Permutation seed. Defaults to `42`.

    Returns:
        dict with DataFrames `"train"`, `"val"`, `"test"`.

    Example:

    ```python
    parts = random_split(frame, seed=0)
    ```
    """
    validate_fractions(val_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(len(frame))
    return _cut(frame.iloc[order], val_fraction, test_fraction)


def random_codes(num_rows, val_fraction=0.1, test_fraction=0.1, seed=42):
    """The part `random_split` puts each row in: 0 train, 1 val, 2 test.

    Args:
        num_rows: int. Rows of the frame.
        val_fraction: float. Defaults to `0.1`.
        test_fraction: float. Defaults to `0.1`.
        seed: int. Defaults to `42`.

    Returns:
        int8 array of `num_rows` codes, in the frame's row order.

    Example:

    ```python
    train = random_codes(len(frame), seed=0) == 0
    ```
    """
    order = np.random.default_rng(seed).permutation(num_rows)
    n_test = int(round(num_rows * test_fraction))
    n_val = int(round(num_rows * val_fraction))
    n_train = num_rows - n_val - n_test
    codes = np.empty(num_rows, np.int8)
    codes[order[:n_train]] = 0
    codes[order[n_train:n_train + n_val]] = 1
    codes[order[n_train + n_val:]] = 2
    return codes


def temporal_split(frame, val_fraction=0.1, test_fraction=0.1):
    """Oldest rows train, the next val, the newest test (global time cut).

    Args:
        frame: pandas DataFrame with a `timestamp` column.
        val_fraction: float. Share of rows in val. Defaults to `0.1`.
        test_fraction: float. Share of rows in test. Defaults to `0.1`.

    Returns:
        dict with DataFrames `"train"`, `"val"`, `"test"`.

    Example:

    ```python
    parts = temporal_split(frame)
    assert parts["train"].timestamp.max() <= parts["test"].timestamp.min()
    ```
    """
    validate_fractions(val_fraction, test_fraction)
    # Ties in timestamp are broken by ids so the cut is reproducible.
    ordered = frame.sort_values(
        ["timestamp", "user_id", "item_id"], kind="stable"
    )
    return _cut(ordered, val_fraction, test_fraction)


def leave_one_out_split(frame):
    """Per user: last interaction test, second last val, the rest train.

    A user with one interaction has it in test only; with two, one in val
    and one in test.

    Args:
        frame: pandas DataFrame with `user_id`, `item_id`, `timestamp`.

    Returns:
        dict with DataFrames `"train"`, `"val"`, `"test"`; val and test
        hold at most one row per user.

    Example:

    ```python
    parts = leave_one_out_split(frame)
    ```
    """
    ordered = frame.sort_values(
        ["user_id", "timestamp", "item_id"], kind="stable"
    )
    from_end = ordered.groupby("user_id").cumcount(ascending=False).to_numpy()
    parts = {
        "train": ordered[from_end >= 2],
        "val": ordered[from_end == 1],
        "test": ordered[from_end == 0],
    }
    return {k: p.reset_index(drop=True) for k, p in parts.items()}


def split_frame(frame, split, val_fraction, test_fraction, seed):
    """Dispatches to the split named `split` (one of `SPLITS`)."""
    if split == "random":
        return random_split(frame, val_fraction, test_fraction, seed)
    if split == "temporal":
        return temporal_split(frame, val_fraction, test_fraction)
    if split == "leave_one_out":
        return leave_one_out_split(frame)
    raise ValueError(f"`split` must be one of {SPLITS}. Received: {split!r}")


def resolve_split(task, split):
    """Returns the split for `task`: retrieval is always leave-one-out.

    Raises:
        ValueError: on an unknown split, or a random/temporal split asked
            for the retrieval task.
    """
    if split is None:
        return "leave_one_out" if task == "retrieval" else "random"
    if split not in SPLITS:
        raise ValueError(
            f"`split` must be one of {SPLITS} or None. "
            f"Received: split={split!r}"
        )
    if task == "retrieval" and split != "leave_one_out":
        raise ValueError(
            "The retrieval task is always split leave-one-out per user; "
            "pass split=None or split='leave_one_out'. "
            f"Received: split={split!r}"
        )
    return split
