"""A model's quality on a dataset, and its size."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
import numpy as np

from tfkd._internal import model_utils
from tfkd.evaluation.ranking_metrics import auc
from tfkd.evaluation.ranking_metrics import logloss
from tfkd.evaluation.ranking_metrics import rmse

if TYPE_CHECKING:
    # Annotations only: the metrics run on any iterable of batches.
    import tensorflow as tf

BYTES_PER_FLOAT32 = 4


def count_params(model: keras.Model) -> int:
    """Number of scalars in the model's weights (trainable or not).

    Args:
        model: `keras.Model`.

    Returns:
        int.

    Example:

    ```python
    count_params(tfkd.models.student(spec))
    ```
    """
    return int(sum(math.prod(w.shape) for w in model.weights))


def model_bytes(model: keras.Model) -> int:
    """Bytes the weights take as float32 (4 bytes per parameter).

    Args:
        model: `keras.Model`.

    Returns:
        int. `count_params(model) * 4`; a quantized export is smaller.

    Example:

    ```python
    model_bytes(model) / 1024  # KiB
    ```
    """
    return count_params(model) * BYTES_PER_FLOAT32


def _predict(model, dataset):
    """Labels and outputs; the model gets the inputs it declares, by name.

    A dataset often carries more columns than a model takes (a student
    reads fewer than its teacher); Keras would match such a dict to the
    inputs by position, so they are selected by name first.
    """
    labels, outputs = [], []
    for features, label in dataset:
        inputs = model_utils.select_inputs(model, features, "model")
        outputs.append(np.asarray(model(inputs, training=False)))
        labels.append(np.asarray(label))
    return np.concatenate(labels), np.concatenate(outputs).reshape(-1)


def _resolve_from_logits(model, from_logits):
    activation = model_utils.probability_activation(model)
    if from_logits is None:
        return activation is None
    if from_logits and activation:
        raise ValueError(
            f"The model's head applies a {activation}: it outputs "
            "probabilities, and from_logits=True would apply the sigmoid "
            "twice. Pass from_logits=False (or None to infer it). "
            "Received: from_logits=True"
        )
    if not from_logits and not activation:
        raise ValueError(
            "The model outputs logits (its head applies no sigmoid or "
            "softmax); from_logits=False would read them as "
            "probabilities. Pass from_logits=True (or None to infer it). "
            "Received: from_logits=False"
        )
    return from_logits


def evaluate_ctr(
    model: keras.Model,
    dataset: tf.data.Dataset,
    from_logits: bool | None = None,
) -> dict[str, float]:
    """AUC and logloss of a binary model on a `(features, label)` dataset.

    Args:
        model: `keras.Model` returning `(batch, 1)` logits, or
            probabilities from a sigmoid head.
        dataset: `tf.data.Dataset` of `(features, 0/1 label)` batches.
            Columns the model does not take are ignored.
        from_logits: bool or None. Whether the model outputs logits. None
            infers it from the head
            (`tfkd._internal.model_utils.probability_activation`): a sigmoid or
            softmax means probabilities. Defaults to `None`.

    Returns:
        dict with `"auc"` and `"logloss"`.

    Raises:
        ValueError: If `from_logits` contradicts the model's head, or the
            data lacks an input the model declares.

    Example:

    ```python
    evaluate_ctr(student, data.test)  # {"auc": 0.79, "logloss": 0.49}
    ```
    """
    from_logits = _resolve_from_logits(model, from_logits)
    labels, outputs = _predict(model, dataset)
    return {
        "auc": auc(labels, outputs),
        "logloss": logloss(labels, outputs, from_logits=from_logits),
    }


def evaluate_rating(
    model: keras.Model, dataset: tf.data.Dataset
) -> dict[str, float]:
    """RMSE of a rating model on a `(features, rating)` dataset.

    Args:
        model: `keras.Model` returning `(batch, 1)` ratings.
        dataset: `tf.data.Dataset` of `(features, rating)` batches.
            Columns the model does not take are ignored.

    Returns:
        dict with `"rmse"`.

    Example:

    ```python
    evaluate_rating(model, data.test)  # {"rmse": 0.93}
    ```
    """
    labels, outputs = _predict(model, dataset)
    return {"rmse": rmse(labels, outputs)}

