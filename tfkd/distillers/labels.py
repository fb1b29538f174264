"""Hard labels checked against the Distiller's output kind.

A rating fed to a binary head trains a sigmoid on labels of 1..5 and the
loss goes negative; nothing else complains. The Distiller reads the labels
of the first batch of every `fit` and `evaluate` call (the arrays
themselves, or one peeked element of a `tf.data.Dataset`) in Python, once,
and refuses labels its kind cannot mean, naming the fix.
"""

import sys

import keras
import numpy as np

from tfkd.distillers import sample_weights as distiller_weights

# Dense rows for a softmax loss must sum to 1 up to float32 rounding of
# probabilities written by the user's pipeline.
ROW_SUM_TOLERANCE = 1e-3
_DENSE_LOSSES = (
    keras.losses.categorical_crossentropy,
    keras.losses.categorical_focal_crossentropy,
    keras.losses.kl_divergence,
)


def first_batch(x, y=None, sample_weight=None):
    """The features and labels of the first batch, without consuming it.

    A `tf.data.Dataset` is peeked through one extra iteration: training
    still sees every element, but a dataset that reshuffles each iteration
    (`shuffle(..., reshuffle_each_iteration=True)`, the default) then
    shuffles the epochs in a different, still seeded, order. Rows whose
    hard-label weight is 0 (a transfer-set row's placeholder label, see
    `tfkd.distillers.sample_weights`) are left out of the labels: they train
    nothing on them.

    Args:
        x: what `fit`/`evaluate` got as `x` (arrays, a dict of arrays, a
            `tf.data.Dataset`, a `keras.utils.PyDataset`, ...).
        y: the labels, when given apart from `x`.
        sample_weight: the weights, when given apart from `x`: one array
            or a dict `{"student": ..., "distillation": ...}`.

    Returns:
        `(features, labels)`, or None when the first batch cannot be read
        without consuming data (a Python generator) or has no labels.

    Example:

    ```python
    features, labels = first_batch(dataset)   # one element peeked
    ```
    """
    tf = _tensorflow()
    if tf is not None and isinstance(x, tf.data.Dataset):
        element = next(iter(x.take(1)), None)
    elif isinstance(x, keras.utils.PyDataset):
        element = x[0]
    elif y is not None:
        element = (x, y, sample_weight)
    else:
        return None
    if element is None:
        return None
    if not isinstance(element, tuple):
        element = (element,)
    features, labels, weights = keras.utils.unpack_x_y_sample_weight(element)
    if labels is None:
        return None
    return features, labelled_rows(labels, weights)


def labelled_rows(labels, sample_weight):
    """The labels of the rows whose hard-label weight is not 0.

    Args:
        labels: array-like or tensor, one row per example.
        sample_weight: None, one array, or a dict as in
            `tfkd.distillers.sample_weights.split_sample_weight`.

    Returns:
        The labels of the other rows (a NumPy array), or `labels` as given
        when there is no hard weight or its rows do not match the labels'.

    Example:

    ```python
    labelled_rows(np.array([1.0, 7.0]), {"student": np.array([1.0, 0.0])})
    # array([1.])
    ```
    """
    weights = distiller_weights.hard_weight(sample_weight)
    if weights is None:
        return labels
    weights, values = _as_array(weights), _as_array(labels)
    if (weights is None or values is None or weights.ndim == 0
            or values.ndim == 0 or len(weights) != len(values)):
        return labels
    keep = (weights.reshape(len(weights), -1) != 0).any(axis=1)
    return values[keep]


def unpack_validation_data(validation_data):
    """`(x, y, sample_weight)` from `fit`'s `validation_data`.

    Args:
        validation_data: a tuple `(x, y)` or `(x, y, sample_weight)`, a
            dataset, or None.

    Returns:
        `(x, y, sample_weight)` to pass to `first_batch` (`y` and
        `sample_weight` None for a dataset, which holds its own).
    """
    if isinstance(validation_data, (tuple, list)):
        return keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
    return validation_data, None, None


def check_labels(labels, kind, width=None, student_loss=None,
                 where="training"):
    """Refuses labels that the resolved output kind cannot mean.

    - every kind: no NaN or infinite label;
    - `"binary"`: labels in [0, 1];
    - `"categorical"`: whole class ids in [0, width), or rows of width
      `width` in [0, 1] summing to 1 when `student_loss` takes one-hot
      rows (`CategoricalCrossentropy`);
    - `"regression"`, `"listwise"`: finite is enough.

    Args:
        labels: array-like or tensor. Labels of one batch (or all of them).
        kind: str. The resolved kind.
        width: int or None. The models' last output dimension.
        student_loss: the resolved student loss, or None for the default.
        where: str. `"training"`, `"validation"` or `"evaluation"`.

    Raises:
        ValueError: naming what the labels look like and the fix.

    Example:

    ```python
    check_labels(np.array([1.0, 5.0]), "binary")
    # ValueError: ... look like ratings ... pass `kind="regression"`
    ```
    """
    values = _as_array(labels)
    if values is None or values.size == 0:
        return
    bad = ~np.isfinite(values).ravel()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"The {where} labels contain {int(bad.sum())} NaN or infinite "
            f"value(s) out of {values.size}; one is enough to make the loss "
            "NaN. Drop or fill those rows before `fit`/`evaluate`. "
            f"Received: {where} label {values.ravel()[first]} at flat "
            f"index {first}"
        )
    if kind == "binary":
        _check_binary(values, where)
    elif kind == "categorical":
        _check_categorical(values, width, _wants_dense(student_loss), where)


def _as_array(labels):
    tf = _tensorflow()
    if tf is not None and isinstance(
        labels, (tf.SparseTensor, tf.RaggedTensor)
    ):
        return None
    if tf is not None and tf.is_tensor(labels):
        if not (labels.dtype.is_floating or labels.dtype.is_integer
                or labels.dtype.is_bool):
            return None
        return tf.cast(labels, tf.float64).numpy()
    values = np.asarray(labels)
    if values.dtype.kind == "b":
        return values.astype(np.uint8)
    # Checked in their own dtype: a copy of every label would double the
    # memory a large NumPy label array takes.
    return values if values.dtype.kind in "iuf" else None


def _check_binary(values, where):
    low, high = values.min(), values.max()
    if low >= 0.0 and high <= 1.0:
        return
    if _whole(values) and low >= 0.0:
        hint = (
            "They look like ratings or counts: pass `kind=\"regression\"` to "
            "predict them, binarize them (e.g. `y = (rating >= 4)`), or, "
            "for class ids, give both models one output per class."
        )
    elif _whole(values) and low == -1.0 and high == 1.0:
        hint = "Map labels in {-1, 1} to {0, 1} with `(y + 1) / 2`."
    else:
        hint = "For real-valued targets pass `kind=\"regression\"`."
    raise ValueError(
        "kind \"binary\" (one sigmoid logit per example, also what "
        "kind=\"auto\" picks for one output) trains on labels in [0, 1], "
        f"but the {where} labels are not. {hint} "
        f"Received: {where} labels in [{low:g}, {high:g}]"
    )


def _wants_dense(student_loss):
    """True for one-hot rows, False for class ids, None if either."""
    if student_loss is None:
        return False
    fn = getattr(student_loss, "fn", student_loss)
    if fn is keras.losses.sparse_categorical_crossentropy:
        return False
    if fn in _DENSE_LOSSES:
        return True
    return None


def _check_categorical(values, width, wants_dense, where):
    dense = bool(width and width > 1 and values.ndim >= 2
                 and values.shape[-1] == width)
    if dense:
        if wants_dense is False:
            raise ValueError(
                f"The {where} labels are rows of width {width} (one-hot?), "
                "but the student loss takes integer class ids. Pass "
                "`student_loss_fn=keras.losses.CategoricalCrossentropy("
                "from_logits=True)`, or labels `y.argmax(-1)`. "
                f"Received: {where} labels of shape {values.shape}"
            )
        _check_rows(values, where)
        return
    if values.ndim >= 2 and values.shape[-1] != 1:
        raise ValueError(
            f"kind \"categorical\" takes class ids of shape (batch,) or "
            f"(batch, 1), or one-hot rows of width {width} (the models' "
            f"output width). Received: {where} labels of shape {values.shape}"
        )
    if wants_dense:
        raise ValueError(
            "The student loss takes one-hot rows, but the "
            f"{where} labels are class ids. Pass `student_loss_fn="
            "keras.losses.SparseCategoricalCrossentropy(from_logits=True)`, "
            f"or labels `keras.utils.to_categorical(y, {width})`. "
            f"Received: {where} labels of shape {values.shape}"
        )
    _check_ids(values, width, where)


def _check_rows(values, where):
    sums = values.sum(axis=-1)
    if values.min() < 0.0 or values.max() > 1.0 or not np.allclose(
        sums, 1.0, atol=ROW_SUM_TOLERANCE
    ):
        raise ValueError(
            f"One-hot or probability rows must hold values in [0, 1] that "
            f"sum to 1. Received: {where} labels in "
            f"[{values.min():g}, {values.max():g}], row sums in "
            f"[{sums.min():g}, {sums.max():g}]"
        )


def _check_ids(values, width, where):
    low, high = values.min(), values.max()
    if not _whole(values):
        raise ValueError(
            "kind \"categorical\" takes whole class ids. For real-valued "
            "targets pass `kind=\"regression\"`. "
            f"Received: {where} labels in [{low:g}, {high:g}]"
        )
    if low >= 0.0 and (width is None or high < width):
        return
    if width and low >= 1.0 and high == width:
        hint = "They look 1-based: pass `y - 1`."
    else:
        hint = (
            f"Give both models {int(high) + 1} outputs, or map the ids to "
            f"[0, {width})."
        )
    raise ValueError(
        f"kind \"categorical\" with {width} outputs takes class ids in "
        f"[0, {width}). {hint} "
        f"Received: {where} labels in [{low:g}, {high:g}]"
    )


def _whole(values):
    return bool(np.all(values == np.round(values)))


def _tensorflow():
    # A `tf.data.Dataset` or TF tensor can only exist once TensorFlow is
    # imported; under the JAX backend it may not even be installed.
    return sys.modules.get("tensorflow")
