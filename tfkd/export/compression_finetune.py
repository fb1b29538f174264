"""What QAT and pruning fine-tunes share: soft targets, the distillation
loss, and the hand-over to `to_tflite`'s pipeline.

Both fine-tunes start from a trained Keras 3 student, rebuild it in
tf_keras (`to_tf_keras`, exact), wrap its layers with TFMOT, fine-tune it
with the same distillation loss as `tfkd.Distiller` (the same loss
objects) against teacher soft targets computed once, then hand the
tf_keras model to the export pipeline (`tflite_export.write_checked`):
int8 calibration and conversion as in `to_tflite`, the LiteRT parity,
unknown-id and metric checks, latency, the atomic write and the one
sidecar schema.
"""

import keras
import numpy as np
import tensorflow as tf
import tf_keras

from tfkd import losses
from tfkd.distillers import loss_terms as distiller_losses
from tfkd.distillers import validation as distiller_validation
from tfkd.export import export_options
from tfkd.export import tflite_export
from tfkd.export.converter_utils import convert_tf_keras_model
from tfkd.export.export_report import CompressionReport

DEFAULT_CALIBRATION_BATCHES = 100
SHUFFLE_SEED = 0


def distillation_loss(alpha=0.5, temperature=2.0):
    """The `tfkd.Distiller` binary loss in TF ops, for tf_keras `compile`.

    `y_true` packs `[label, teacher_logit]` in its last axis; `y_pred` is
    the student logit:

    ```
    loss = alpha * BCE(y, sigmoid(s))
           + (1 - alpha) * T**2 * KL(sigmoid(t / T) || sigmoid(s / T))
    KL   = softplus(-s') - softplus(-t') + (1 - sigmoid(t')) * (s' - t')
    ```

    with `s' = s / T`, `t' = t / T` (the form of
    `tfkd.losses.BinaryKLDivergence`).

    Args:
        alpha: float in [0, 1]. Weight of the hard-label term. Defaults to
            `0.5`.
        temperature: float > 0. Defaults to `2.0`.

    Returns:
        A function `loss(y_true, y_pred)` returning one value per example.

    Raises:
        ValueError: If `alpha` or `temperature` is out of range.

    Example:

    >>> loss = distillation_loss(alpha=0.0, temperature=1.0)
    >>> float(loss(tf.constant([[1.0, 0.0]]), tf.constant([[0.0]]))[0])
    0.0
    """
    validate_alpha_temperature(alpha, temperature)
    hard_fn = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)
    soft_fn = losses.BinaryKLDivergence(reduction=None)

    def loss(y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        s = tf.reshape(tf.cast(y_pred, tf.float32), [-1, 1])
        hard = hard_fn(y_true[:, :1], s)
        soft = distiller_losses.soft_target_loss(
            "binary", soft_fn, y_true[:, 1:2], s, temperature
        )
        return alpha * hard + (1.0 - alpha) * soft

    return loss


def validate_alpha_temperature(alpha, temperature):
    """Refuses what `tfkd.Distiller` refuses: alpha outside [0, 1], T < 0.05.

    Args:
        alpha: number. Hard-label weight.
        temperature: number. Soft-target temperature.

    Returns:
        `(alpha, temperature)` as floats.
    """
    return (
        distiller_validation.validate_alpha(alpha),
        distiller_validation.validate_temperature(temperature),
    )


def soft_target_dataset(teacher_or_logits, train_ds, seed=SHUFFLE_SEED):
    """Caches the teacher's logits next to the training data.

    One pass over `train_ds` collects the features and labels; the teacher
    (if given as a model) runs once per batch with `training=False`. The
    result is shuffled every epoch and yields `(features, [label, logit])`.

    Args:
        teacher_or_logits: `keras.Model` (the teacher, outputs logits) or
            an array of logits, one per example of one in-order pass over
            `train_ds` (so `train_ds` must then not reshuffle).
        train_ds: `tf.data.Dataset` of `(features, labels)` batches.
        seed: int. Shuffle seed. Defaults to `0`.

    Returns:
        `(dataset, features, labels, teacher_logits)`: the batched dataset
        (same batch size as `train_ds`) and the NumPy arrays behind it.

    Raises:
        TypeError: If `train_ds` is not a `tf.data.Dataset`.
        ValueError: If the logits do not match the number of examples.
    """
    if not isinstance(train_ds, tf.data.Dataset):
        raise TypeError(
            "Expected `train_ds` to be a tf.data.Dataset of (features, "
            f"labels). Received: train_ds of type {type(train_ds).__name__}"
        )
    features, labels, logits, batch_size = [], [], [], None
    is_model = isinstance(teacher_or_logits, keras.Model)
    for element in train_ds.as_numpy_iterator():
        batch, label = element[0], element[1]
        features.append(batch)
        labels.append(np.asarray(label, np.float32).reshape(-1))
        batch_size = batch_size or labels[-1].shape[0]
        if is_model:
            logits.append(
                np.asarray(teacher_or_logits(batch, training=False))
            )
    features = {
        name: np.concatenate([b[name] for b in features])
        for name in features[0]
    }
    labels = np.concatenate(labels)
    if is_model:
        teacher_logits = np.concatenate(logits).reshape(-1)
    else:
        teacher_logits = np.asarray(teacher_or_logits, np.float32).reshape(-1)
    if teacher_logits.shape[0] != labels.shape[0]:
        raise ValueError(
            "Expected one teacher logit per training example. Received: "
            f"{teacher_logits.shape[0]} logits for {labels.shape[0]} examples"
        )
    targets = np.stack([labels, teacher_logits.astype(np.float32)], axis=1)
    dataset = (
        tf.data.Dataset.from_tensor_slices((features, targets))
        .shuffle(labels.shape[0], seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, features, labels, teacher_logits


def fit_distilled(model, dataset, epochs, alpha, temperature, learning_rate,
                  verbose, callbacks=None):
    """Fine-tunes a tf_keras model on `distillation_loss` with Adam."""
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss=distillation_loss(alpha, temperature),
    )
    model.fit(dataset, epochs=epochs, verbose=verbose, callbacks=callbacks)


def batch_size_of(train_ds):
    """The size of the first batch of `train_ds`."""
    for element in train_ds.take(1):
        return int(np.asarray(element[1]).reshape(-1).shape[0])
    raise ValueError("Expected `train_ds` to hold at least one batch.")


def export_settings(student, train_ds, validation_data, settings):
    """Checks the export arguments up front, before minutes of fine-tune.

    The arguments are checked as `to_tflite` checks them, on the Keras 3
    `student` the twin will be built from.

    Args:
        student: `keras.Model`. The Keras 3 student.
        train_ds: `tf.data.Dataset`. Calibration data.
        validation_data: `tf.data.Dataset` or None. Parity and metric data.
        settings: dict with `num_calibration_batches`, `max_metric_drop`
            and `allow_metric_drop`.

    Returns:
        The resolved options for `export_finetuned`.
    """
    options = tflite_export.checked_options(
        student,
        "int8",
        train_ds,
        validation_data,
        {
            "metric": "auto",
            "output_kind": None,
            "id_inputs": None,
            "max_metric_drop": settings["max_metric_drop"],
            "allow_metric_drop": settings["allow_metric_drop"],
            "num_calibration_batches": settings["num_calibration_batches"],
            "latency_runs": tflite_export.DEFAULT_LATENCY_RUNS,
            "feature_spec": None,
        },
    )
    options.pop("id_inputs")
    options["unknown_ids"] = tflite_export.unknown_ids_of(student)
    options["num_calibration_batches"] = settings["num_calibration_batches"]
    return options


def export_finetuned(finetuned, path, train_ds, validation_data, options,
                     compression, sparsity=None):
    """Hands a fine-tuned tf_keras twin to `to_tflite`'s pipeline.

    The twin is converted to full int8 (calibrated on `train_ds` as
    `to_tflite` calibrates) and the file is checked against the twin.

    Args:
        finetuned: `tf_keras.Model`. The fine-tuned twin.
        path: str. Validated destination.
        train_ds: `tf.data.Dataset`. Calibration data.
        validation_data: `tf.data.Dataset` or None. Parity and metric data.
        options: dict from `export_settings`.
        compression: str. `"qat"` or `"pruning"`.
        sparsity: float or None. Pruning's measured sparsity. Defaults to
            `None`.

    Returns:
        A `CompressionReport`.
    """
    model_bytes = convert_tf_keras_model(
        finetuned, "int8", train_ds, options["num_calibration_batches"]
    )
    return tflite_export.write_checked(
        finetuned,
        path,
        model_bytes,
        export_options.collect_batches(validation_data),
        options,
        compression=compression,
        extra_metrics=None if sparsity is None else {"sparsity": sparsity},
        report_class=CompressionReport,
        sparsity=sparsity,
        model=finetuned,
    )
