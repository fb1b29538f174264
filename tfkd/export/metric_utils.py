"""Small metric helpers for the export parity check.

They live here, not in `tfkd.evaluation`, so that export has no dependency
on the evaluation module and both can evolve independently.
"""

import numpy as np


def auc(y_true, y_score):
    """ROC AUC by the rank statistic (Mann-Whitney U), ties averaged.

    ```
    AUC = (sum of ranks of positives - P * (P + 1) / 2) / (P * N)
    ```

    Args:
        y_true: array-like of 0/1 labels.
        y_score: array-like of scores (logits or probabilities; AUC only
            depends on their order).

    Returns:
        The AUC as a float.

    Raises:
        ValueError: If labels are not binary or one class is absent.

    Example:

    >>> auc([0, 1, 1], [0.1, 0.4, 0.9])
    1.0
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_score = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if not np.all((y_true == 0) | (y_true == 1)):
        raise ValueError(
            "AUC needs binary 0/1 labels; for ratings pass "
            f"`metric='rmse'`. Received: labels={np.unique(y_true)[:5]}"
        )
    positives = int(y_true.sum())
    negatives = y_true.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            "AUC needs both classes in the validation data. Received: "
            f"positives={positives}, negatives={negatives}"
        )
    ranks = _average_ranks(y_score)
    u = ranks[y_true == 1].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def rmse(y_true, y_pred):
    """Root mean squared error.

    Args:
        y_true: array-like of targets.
        y_pred: array-like of predictions, same number of elements.

    Returns:
        The RMSE as a float.

    Example:

    >>> rmse([1.0, 3.0], [2.0, 3.0])  # sqrt((1 + 0) / 2)
    0.7071067811865476
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def _average_ranks(values):
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start index of each run of equal values, then its 1-based mean rank.
    is_new_run = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    starts = np.flatnonzero(is_new_run)
    ends = np.r_[starts[1:], values.size]
    mean_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks
