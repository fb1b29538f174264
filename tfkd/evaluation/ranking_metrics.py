"""Pointwise quality metrics on NumPy arrays: AUC, log loss, RMSE.

Plain NumPy (no scikit-learn), so they run wherever tfkd does.
"""

import numpy as np
import numpy.typing as npt

# Keeps log(p) finite for predicted probabilities of exactly 0 or 1.
LOGLOSS_EPSILON = 1e-7


def as_1d(
    name: str, values: npt.ArrayLike, dtype: npt.DTypeLike = np.float64
) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D or (n, 1). Received shape {array.shape}"
        )
    return array


def _paired(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    y_true = as_1d("y_true", y_true)
    y_pred = as_1d("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same length. Received: "
            f"{len(y_true)} and {len(y_pred)}"
        )
    if len(y_true) == 0:
        raise ValueError("Metrics need at least one example. Received: 0")
    return y_true, y_pred


def _check_binary(y_true):
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValueError(
            "`y_true` must hold only 0 and 1. "
            f"Received values: {np.unique(y_true)[:10]}"
        )


def _average_ranks(values):
    """1-based ranks; tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(
        values, return_inverse=True, return_counts=True
    )
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    return mean_rank[inverse]


def auc(y_true: npt.ArrayLike, y_score: npt.ArrayLike) -> float:
    """Area under the ROC curve via the rank (Mann-Whitney U) statistic.

    ```
    AUC = (sum of positives' ranks - P (P + 1) / 2) / (P N)
    ```

    Tied scores get the mean of their ranks, so a tie between a positive
    and a negative counts one half. Exact, where `keras.metrics.AUC`
    interpolates over thresholds; the two agree to 1e-3 with 20,000
    thresholds (`tests/test_evaluation.py`).

    Args:
        y_true: array-like of 0/1, shape `(n,)` or `(n, 1)`.
        y_score: array-like of scores (logits or probabilities), same shape.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: if labels are not 0/1, lengths differ, or one class is
            missing (AUC is undefined).

    Example:

    ```python
    auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # 0.75
    ```
    """
    y_true, y_score = _paired(y_true, y_score)
    _check_binary(y_true)
    positives = int(y_true.sum())
    negatives = len(y_true) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            "AUC needs both classes. Received: "
            f"{positives} positives and {negatives} negatives"
        )
    ranks = _average_ranks(y_score)
    rank_sum = ranks[y_true == 1].sum()
    u = rank_sum - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def logloss(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, from_logits: bool = False
) -> float:
    """Mean binary cross-entropy.

    ```
    logloss = -mean(y log p + (1 - y) log(1 - p)),  p = sigmoid(z) if logits
    ```

    Args:
        y_true: array-like of 0/1.
        y_pred: array-like of probabilities, or logits if `from_logits`.
        from_logits: bool. Defaults to `False`.

    Returns:
        float >= 0.

    Raises:
        ValueError: on non-binary labels or mismatched lengths.

    Example:

    ```python
    logloss([1, 0], [0.5, 0.5])  # log(2) = 0.6931
    ```
    """
    y_true, y_pred = _paired(y_true, y_pred)
    _check_binary(y_true)
    if from_logits:
        # Stable form of the cross-entropy of sigmoid(z).
        z = y_pred
        losses = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
        return float(losses.mean())
    p = np.clip(y_pred, LOGLOSS_EPSILON, 1.0 - LOGLOSS_EPSILON)
    losses = -(y_true * np.log(p) + (1.0 - y_true) * np.log(1.0 - p))
    return float(losses.mean())


def rmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Root mean squared error.

    Args:
        y_true: array-like of targets.
        y_pred: array-like of predictions, same length.

    Returns:
        float >= 0.

    Example:

    ```python
    rmse([1, 2, 3], [1, 2, 5])  # sqrt(4 / 3) = 1.1547
    ```
    """
    y_true, y_pred = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))



def gap_recovery(distilled: float, scratch: float,
                 teacher: float) -> float | None:
    """The share of the scratch-to-teacher gap a distilled student closes.

    `(distilled - scratch) / (teacher - scratch)`: 1.0 when the student
    matches its teacher, 0 when distillation gained nothing, above 1 when
    it beats the teacher. Issue-style goals read it against the ensemble
    teacher ("recovers 0.9 of the gap").

    Args:
        distilled: float. The distilled student's metric (e.g. test AUC).
        scratch: float. The same student trained on hard labels only.
        teacher: float. The teacher's metric.

    Returns:
        float, or None when `teacher == scratch` (no gap: the ratio is
        undefined, and JSON has no NaN).

    Example:

    ```python
    gap_recovery(0.8670, 0.8550, 0.8698)  # 0.81
    ```
    """
    gap = teacher - scratch
    return None if gap == 0 else float((distilled - scratch) / gap)
