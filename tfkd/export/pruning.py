"""Magnitude-pruning fine-tune of a student, shipped as int8."""


import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfkd.export import atomic_write
from tfkd.export.compression_finetune import DEFAULT_CALIBRATION_BATCHES
from tfkd.export.compression_finetune import export_finetuned
from tfkd.export.compression_finetune import export_settings
from tfkd.export.compression_finetune import fit_distilled
from tfkd.export.compression_finetune import soft_target_dataset
from tfkd.export.compression_finetune import validate_alpha_temperature
from tfkd.export.export_report import CompressionReport
from tfkd.export.tf_keras_bridge import to_tf_keras
from tfkd.export.tf_keras_layers import TfKerasFeatureEmbedding


def prune_finetune(
    student: keras.Model,
    teacher_or_logits: keras.Model | np.ndarray,
    train_ds: tf.data.Dataset,
    path: str | os.PathLike,
    validation_data: tf.data.Dataset | None = None,
    target_sparsity: float = 0.5,
    epochs: int = 1,
    prune_embeddings: bool = True,
    alpha: float = 0.5,
    temperature: float = 2.0,
    learning_rate: float = 1e-4,
    num_calibration_batches: int = DEFAULT_CALIBRATION_BATCHES,
    max_metric_drop: float = 0.005,
    allow_metric_drop: bool = False,
    verbose: int = 0,
) -> CompressionReport:
    """Prunes a student by magnitude while distilling, then int8.

    The Dense kernels (and, with `prune_embeddings`, the embedding tables)
    are wrapped with `prune_low_magnitude`; sparsity ramps from 0 to
    `target_sparsity` over the first half of the fine-tune (polynomial
    decay) and holds there, so the second half recovers the accuracy.
    `strip_pruning` removes the wrappers before the int8 conversion. A
    flatbuffer stores zeros densely: the gain shows in `gzip_bytes`.

    Args:
        student: `keras.Model`. The trained Keras 3 student.
        teacher_or_logits: `keras.Model` or array. As in
            `quantization_aware_finetune`.
        train_ds: `tf.data.Dataset` of `(features, labels)` batches.
        path: str or os.PathLike. Destination ending in `.tflite`.
        validation_data: `tf.data.Dataset` or None. Defaults to `None`.
        target_sparsity: float in [0, 1). Share of each pruned weight
            tensor set to zero. Defaults to `0.5`.
        epochs: int >= 1. Defaults to `1`.
        prune_embeddings: bool. Also prune the embedding tables
            (`Embedding`, `FeatureEmbedding`). Defaults to `True`.
        alpha: float in [0, 1]. Defaults to `0.5`.
        temperature: float > 0. Defaults to `2.0`.
        learning_rate: float. Defaults to `1e-4`.
        num_calibration_batches: int >= 1. Defaults to `100`.
        max_metric_drop: float >= 0. Largest AUC drop allowed from the
            fine-tuned model to the int8 file, as in `to_tflite`.
            Defaults to `0.005`.
        allow_metric_drop: bool. Write the file anyway. Defaults to
            `False`.
        verbose: int. Passed to `fit`. Defaults to `0`.

    Returns:
        A `CompressionReport` with `compression="pruning"` and the measured
        `sparsity`; `report.model` is the stripped tf_keras model.

    Raises:
        TypeError: If `student` is not a Functional `keras.Model`.
        ValueError: If `target_sparsity` is outside [0, 1), or the student
            has a layer the bridge cannot rebuild.

    Example:

    ```python
    report = prune_finetune(student, teacher, data.train,
                            "export/student_pruned.tflite",
                            target_sparsity=0.5)
    print(report.sparsity, report.gzip_bytes)
    ```
    """
    path = atomic_write.validate_model_path(path)
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(
            "Expected `target_sparsity` in [0, 1). "
            f"Received: target_sparsity={target_sparsity!r}"
        )
    validate_alpha_temperature(alpha, temperature)
    options = export_settings(student, train_ds, validation_data, {
        "num_calibration_batches": num_calibration_batches,
        "max_metric_drop": max_metric_drop,
        "allow_metric_drop": allow_metric_drop,
    })
    dataset, _, _, _ = soft_target_dataset(teacher_or_logits, train_ds)
    steps = int(dataset.cardinality()) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=target_sparsity,
        begin_step=0,
        end_step=max(1, steps // 2),
        frequency=max(1, steps // 20),
    )
    prunable: tuple[type, ...] = (tf_keras.layers.Dense,)
    if prune_embeddings:
        prunable += (tf_keras.layers.Embedding, TfKerasFeatureEmbedding)

    def wrap(layer):
        if type(layer) in prunable:
            return tfmot.sparsity.keras.prune_low_magnitude(
                layer, pruning_schedule=schedule
            )
        return layer

    twin = to_tf_keras(student)
    pruned = tf_keras.models.clone_model(twin, clone_function=wrap)
    fit_distilled(pruned, dataset, epochs, alpha, temperature, learning_rate,
         verbose, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    sparsity = weight_sparsity(stripped, prunable)
    return export_finetuned(
        stripped, path, train_ds, validation_data, options, "pruning",
        sparsity,
    )


def weight_sparsity(model, layer_types=(tf_keras.layers.Dense,)):
    """Share of exact zeros in the kernels / tables of some layer types.

    Biases are not counted: `prune_low_magnitude` leaves them dense.

    Args:
        model: `tf_keras.Model`. A stripped (unwrapped) model.
        layer_types: tuple of tf_keras layer classes. Defaults to Dense.

    Returns:
        zeros / total over the `kernel` and `*embeddings` weights (the
        tables of `Embedding` and `FeatureEmbedding`), a float.
    """
    zeros, total = 0, 0
    for layer in model.layers:
        if type(layer) not in layer_types:
            continue
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            if name == "kernel" or name.endswith("embeddings"):
                values = weight.numpy()
                zeros += int(np.sum(values == 0))
                total += values.size
    return float(zeros / total) if total else 0.0
