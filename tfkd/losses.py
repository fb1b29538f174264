"""Soft-target losses for distillation, written on logits.

Every loss here takes the teacher's logits as `y_true` and the student's
logits as `y_pred`, and works in log space (softplus, log-softmax), so it stays
finite for logits of +-1e4, is exactly zero when the two logits are equal, and
never goes negative. Temperature is not a property of these losses: the
`tfkd.Distiller` divides both logits by `T` before calling them and multiplies
the result by `T**2`, as in Hinton et al. (2015).
"""

import keras
from keras import ops

from tfkd._internal.api_export import tfkd_export

__all__ = [
    "BinaryKLDivergence",
    "CategoricalKLDivergence",
    "ListwiseSoftmaxCrossEntropy",
    "LogitDistillationLoss",
    "PADDING_SCORE",
]


@tfkd_export("tfkd.losses.LogitDistillationLoss")
class LogitDistillationLoss(keras.losses.Loss):
    """Base class of losses that compare teacher and student logits.

    The `tfkd.Distiller` hands subclasses raw (temperature-scaled) logits.
    Any other loss, such as `keras.losses.KLDivergence()` or the string
    `"kl_divergence"`, is handed probabilities instead, as in the keras.io
    distillation recipe. Subclasses implement `call(y_true, y_pred)` and return
    one value per example.

    Args:
        reduction: str. Type of reduction to apply to the per-example values.
            Defaults to `"sum_over_batch_size"`.
        name: str. Name of the loss instance.
        dtype: The dtype of the loss's computations. Defaults to `None`.
    """

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return super().get_config()


@tfkd_export("tfkd.losses.BinaryKLDivergence")
class BinaryKLDivergence(LogitDistillationLoss):
    """Bernoulli KL divergence between two sigmoid logits.

    For a CTR head with one logit per example, the soft target is the
    Bernoulli distribution `p = sigmoid(t)`; the student's is
    `q = sigmoid(s)`:

    ```
    KL(p || q) = p * log(p / q) + (1 - p) * log((1 - p) / (1 - q))
               = p * (softplus(-s) - softplus(-t))
                 + (1 - p) * (softplus(s) - softplus(t))
    ```

    The second form uses `log sigmoid(x) = -softplus(-x)`; its gradient with
    respect to `s` is `q - p`. Each difference is taken between terms of the
    same branch, so a small KL between two large logits does not vanish in
    the cancellation of two large numbers. A softmax over a last axis of
    size 1 is always 1, which is why this loss, not a categorical one, is
    the right soft target for a single logit. The last axis (the logits of
    independent binary tasks) is summed.

    Args:
        reduction: str. Type of reduction to apply to the per-example values.
            Defaults to `"sum_over_batch_size"`.
        name: str. Name of the loss instance. Defaults to
            `"binary_kl_divergence"`.
        dtype: The dtype of the loss's computations. Defaults to `None`.

    Returns:
        One value per example (before reduction).

    Example:

    >>> loss = tfkd.losses.BinaryKLDivergence()
    >>> round(float(loss([[0.0]], [[0.0]])), 6)
    0.0
    >>> round(float(loss([[2.0]], [[0.0]])), 4)
    0.3278
    """

    def __init__(
        self,
        reduction="sum_over_batch_size",
        name="binary_kl_divergence",
        dtype=None,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        t = ops.convert_to_tensor(y_true, dtype=self.dtype)
        s = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        p = ops.sigmoid(t)
        kl = p * (ops.softplus(-s) - ops.softplus(-t)) + (1.0 - p) * (
            ops.softplus(s) - ops.softplus(t)
        )
        # Rounding can leave -1e-8 where the true value is 0.
        return ops.sum(ops.maximum(kl, 0.0), axis=-1)


@tfkd_export("tfkd.losses.CategoricalKLDivergence")
class CategoricalKLDivergence(LogitDistillationLoss):
    """Softmax KL divergence between teacher and student logits.

    ```
    KL(p || q) = sum_i p_i * (log_softmax(t)_i - log_softmax(s)_i)
    p = softmax(t)
    ```

    Used for classifiers (softmax over classes) and for listwise ranking
    (softmax over a user's candidate list).

    Args:
        axis: int. The axis the softmax runs over. Defaults to `-1`.
        reduction: str. Type of reduction to apply to the per-example values.
            Defaults to `"sum_over_batch_size"`.
        name: str. Name of the loss instance. Defaults to
            `"categorical_kl_divergence"`.
        dtype: The dtype of the loss's computations. Defaults to `None`.

    Returns:
        One value per example (before reduction).

    Example:

    >>> loss = tfkd.losses.CategoricalKLDivergence()
    >>> round(float(loss([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]])), 6)
    0.0
    """

    def __init__(
        self,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_kl_divergence",
        dtype=None,
    ):
        if not isinstance(axis, int):
            raise TypeError(f"`axis` must be an int. Received: axis={axis!r}")
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.axis = axis

    def call(self, y_true, y_pred):
        t = ops.convert_to_tensor(y_true, dtype=self.dtype)
        s = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        log_p = ops.log_softmax(t, axis=self.axis)
        log_q = ops.log_softmax(s, axis=self.axis)
        kl = ops.sum(ops.exp(log_p) * (log_p - log_q), axis=self.axis)
        return ops.maximum(kl, 0.0)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


@tfkd_export("tfkd.losses.ListwiseSoftmaxCrossEntropy")
class ListwiseSoftmaxCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy of a candidate list against graded relevance.

    The hard-label loss of a listwise ranker: the relevance labels of one
    list are normalised into a target distribution and compared with the
    softmax of the scores:

    ```
    loss = -sum_i (y_i / sum_j y_j) * log_softmax(s)_i
    ```

    Lists whose labels are all zero (no relevant candidate) contribute 0.
    Negative labels mark padding: those candidates get no probability mass.

    Args:
        reduction: str. Type of reduction to apply to the per-list values.
            Defaults to `"sum_over_batch_size"`.
        name: str. Name of the loss instance. Defaults to
            `"listwise_softmax_cross_entropy"`.
        dtype: The dtype of the loss's computations. Defaults to `None`.

    Returns:
        One value per list (before reduction).

    Example:

    >>> loss = tfkd.losses.ListwiseSoftmaxCrossEntropy()
    >>> round(float(loss([[1.0, 0.0]], [[0.0, 0.0]])), 4)  # log(2)
    0.6931
    """

    def __init__(
        self,
        reduction="sum_over_batch_size",
        name="listwise_softmax_cross_entropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y = ops.convert_to_tensor(y_true, dtype=self.dtype)
        s = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        valid = ops.cast(y >= 0.0, s.dtype)
        y = y * valid
        # Padded candidates get -inf-like scores so the softmax ignores them.
        s = ops.where(valid > 0, s, ops.full_like(s, PADDING_SCORE))
        total = ops.sum(y, axis=-1, keepdims=True)
        target = ops.divide_no_nan(y, total)
        return -ops.sum(target * ops.log_softmax(s, axis=-1), axis=-1)

    def get_config(self):
        return super().get_config()


# Large enough that exp(PADDING_SCORE - s) underflows to 0 for any real
# score, small enough that it stays finite in float16.
PADDING_SCORE = -1e4
