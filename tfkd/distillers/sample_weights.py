"""Per-term sample weights: one weight for the hard labels, one for the
soft targets.

A transfer set (`tfkd.datasets.with_transfer_set`) adds rows that have no
label, only the teacher's soft target: their hard-label weight is 0 and
their soft weight 1. The Distiller therefore takes `sample_weight` either
as one array (both terms, as in Keras) or as a dict:

```
sample_weight = {"student": w_hard, "distillation": w_soft}
student_loss      = sum_i w_hard[i] * l(y[i], s[i])        / N
distillation_loss = sum_i w_soft[i] * T**2 * D(t[i] / T, s[i] / T) / N
```

`N` is the number of rows in the batch, rows of weight 0 included (the
global batch under a `tf.distribute` strategy; Keras'
`"sum_over_batch_size"`, the default reduction of every loss tfkd builds;
a loss object with another reduction keeps its own, e.g.
`"mean_with_sample_weight"` divides by `sum_i w[i]` instead). Compiled
metrics follow `w_hard`: `compile(weighted_metrics=...)` are weighted by
it, and `compile(metrics=...)`, which Keras never weights, count only the
rows where it is not 0. A row of hard weight 0 thus counts in no metric.
A missing key means weights of 1 for that term.
"""

from collections import abc

from keras import ops

from tfkd._internal import compat as _compat

TERMS = ("student", "distillation")


def split_sample_weight(sample_weight):
    """The weights of the hard-label term and of the soft-target term.

    Args:
        sample_weight: None, one array or tensor (both terms), or a dict
            with the optional keys `"student"` (hard labels and compiled
            metrics) and `"distillation"` (soft targets).

    Returns:
        `(hard, soft)`: each an array, a tensor or None (weights of 1).

    Raises:
        ValueError: on a dict key other than `"student"` and
            `"distillation"`.

    Example:

    ```python
    split_sample_weight({"distillation": w})   # (None, w)
    split_sample_weight(w)                      # (w, w)
    ```
    """
    if not is_per_term(sample_weight):
        return sample_weight, sample_weight
    unknown = sorted(str(key) for key in set(sample_weight) - set(TERMS))
    if unknown:
        raise ValueError(
            "A dict `sample_weight` weights the Distiller's loss terms: its "
            "keys are 'student' (hard labels and metrics) and "
            "'distillation' (soft targets), each optional. For one weight "
            "on both terms pass a single array. "
            f"Received keys: {unknown}"
        )
    return sample_weight.get("student"), sample_weight.get("distillation")


def hard_weight(sample_weight):
    """The weight of the hard-label term alone (None: weights of 1).

    Args:
        sample_weight: as in `split_sample_weight`.

    Returns:
        An array, a tensor or None.
    """
    return split_sample_weight(sample_weight)[0]


def update_metrics(model, y, y_pred, sample_weight):
    """Updates the compiled metrics for a dict `sample_weight`.

    Args:
        model: the compiled `tfkd.Distiller`.
        y: the hard labels.
        y_pred: the student's logits.
        sample_weight: a dict as in `split_sample_weight`.
    """
    hard = hard_weight(sample_weight)
    rows = None
    if hard is not None:
        rows = ops.cast(ops.not_equal(hard, 0), "float32")
    _compat.update_compiled_metrics(model, y, y_pred, rows, hard)


def is_per_term(sample_weight):
    """Whether `sample_weight` gives each loss term its own weight.

    Args:
        sample_weight: what a step received as `sample_weight`.

    Returns:
        bool. True for a dict (a `Mapping`).
    """
    return isinstance(sample_weight, abc.Mapping)
