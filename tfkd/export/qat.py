"""Quantization-aware fine-tuning of a student, shipped as int8.

Only the Dense layers are QAT-annotated: TFMOT's whole-model
`quantize_model` fails on the int32 id inputs (inside its `QuantizeLayer`).
The embedding layer that feeds the first Dense (`FeatureEmbedding`, or a
Concatenate of per-feature embeddings in a hand-built model) gets an output
fake-quant, as TFMOT gives any Concatenate before an annotated layer: the
converter gives that range to every concatenated tensor
(CONCATENATION keeps one scale), so the embedding tables and the pooled
list features are stored on the scale QAT trained with. The tables
themselves are not fake-quantized (TFMOT leaves `Embedding` tables alone
too); the remaining ops inside the layer (the SUM and MUL of the masked
mean pooling) are calibrated on the training data.

Activation ranges are set from data before the fine-tune
(`calibrate_activation_ranges`). TFMOT starts every range at [-6, 6] and
moves it by an EMA with decay 0.999, so after one MovieLens epoch (228
steps) the concat range was still [-4.88, 4.88] for embeddings within
[-0.53, 0.53]. That coarse scale (0.038) was also the output scale of the
int8 DIV of the genres mean; LiteRT's int8 DIV kernel needs a right shift
of more than 31 bits when a small numerator (|q - zp| <= 4) meets such an
output scale, and saturates to +-127 (measured: the pooled genres read
+-4.86 on 15% of test rows, logits off by up to 5.5, QAT int8 AUC 0.8117
against 0.8504 for the QAT model). The pooling computes
`total * (1 / count)` (`tfkd.models.feature_embedding.masked_mean`, shared
by the tf_keras twin), so no DIV with a data numerator is left.
"""


import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfkd._internal import compat as _compat
from tfkd.export import atomic_write
from tfkd.export.compression_finetune import DEFAULT_CALIBRATION_BATCHES
from tfkd.export.compression_finetune import batch_size_of
from tfkd.export.compression_finetune import export_finetuned
from tfkd.export.compression_finetune import export_settings
from tfkd.export.compression_finetune import fit_distilled
from tfkd.export.compression_finetune import soft_target_dataset
from tfkd.export.compression_finetune import validate_alpha_temperature
from tfkd.export.export_report import CompressionReport
from tfkd.export.tf_keras_bridge import to_tf_keras
from tfkd.export.tf_keras_layers import CUSTOM_OBJECTS
from tfkd.export.tf_keras_layers import TfKerasFeatureEmbedding


def quantization_aware_finetune(
    student: keras.Model,
    teacher_or_logits: keras.Model | np.ndarray,
    train_ds: tf.data.Dataset,
    path: str | os.PathLike,
    validation_data: tf.data.Dataset | None = None,
    epochs: int = 1,
    alpha: float = 0.5,
    temperature: float = 2.0,
    learning_rate: float = 1e-4,
    num_calibration_batches: int = DEFAULT_CALIBRATION_BATCHES,
    max_metric_drop: float = 0.005,
    allow_metric_drop: bool = False,
    verbose: int = 0,
) -> CompressionReport:
    """Fine-tunes a student with fake-quantized Dense layers, then int8.

    ```
    twin = to_tf_keras(student)                  # exact copy in tf_keras
    qat  = quantize_apply(annotate(Dense layers of twin))  # + embedding out
    set the activation ranges of qat from twin on the calibration batches
    fit qat on distillation_loss(alpha, T) against cached teacher logits
    int8 = TFLiteConverter.from_keras_model(qat), calibrated on train_ds
    ```

    Args:
        student: `keras.Model`. The trained Keras 3 student (a
            `tfkd.models.ranking_model`, logit output).
        teacher_or_logits: `keras.Model` or array. The teacher, or its
            logits on one in-order pass over `train_ds`.
        train_ds: `tf.data.Dataset` of `(features, labels)` batches.
        path: str or os.PathLike. Destination ending in `.tflite`.
        validation_data: `tf.data.Dataset` or None. `(features, labels)`
            batches on which the AUC of the model and file is measured.
            Defaults to `None`.
        epochs: int >= 1. Defaults to `1`.
        alpha: float in [0, 1]. Hard-label weight. Defaults to `0.5`.
        temperature: float > 0. Defaults to `2.0`.
        learning_rate: float. Adam learning rate; small, as the student is
            already trained. Defaults to `1e-4`.
        num_calibration_batches: int >= 1. Training batches used to set
            the fake-quant activation ranges before the fine-tune and to
            calibrate the ops QAT does not cover (pooling, cross layers).
            Defaults to `100`.
        max_metric_drop: float >= 0. Largest AUC drop allowed from the
            fine-tuned model to the int8 file, as in `to_tflite`.
            Defaults to `0.005`.
        allow_metric_drop: bool. Write the file anyway. Defaults to
            `False`.
        verbose: int. Passed to `fit`. Defaults to `0`.

    Returns:
        A `CompressionReport` with `compression="qat"`; `report.model` is the
        QAT tf_keras model.

    Raises:
        TypeError: If `student` is not a Functional `keras.Model`.
        ValueError: If the student has a layer the bridge cannot rebuild,
            or an argument is out of range.

    Example:

    ```python
    report = quantization_aware_finetune(
        student, teacher, data.train, "export/student_qat.tflite",
        validation_data=data.test,
    )
    print(report.bytes, report.metric_after)
    ```
    """
    path = atomic_write.validate_model_path(path)
    validate_alpha_temperature(alpha, temperature)
    options = export_settings(student, train_ds, validation_data, {
        "num_calibration_batches": num_calibration_batches,
        "max_metric_drop": max_metric_drop,
        "allow_metric_drop": allow_metric_drop,
    })
    dataset, features, _, _ = soft_target_dataset(teacher_or_logits, train_ds)
    twin = to_tf_keras(student)
    annotated = tf_keras.models.clone_model(
        twin, clone_function=_annotate_dense
    )
    with tfmot.quantization.keras.quantize_scope(
        {**CUSTOM_OBJECTS, **QUANTIZE_CONFIGS}
    ):
        qat_model = tfmot.quantization.keras.quantize_apply(
            annotated, scheme=_EmbeddingAwareScheme()
        )
    batch_size = batch_size_of(train_ds)
    calibrate_activation_ranges(
        qat_model, twin, features, num_calibration_batches, batch_size
    )
    fit_distilled(qat_model, dataset, epochs, alpha, temperature, learning_rate,
         verbose)
    return export_finetuned(
        qat_model, path, train_ds, validation_data, options, "qat"
    )



def calibrate_activation_ranges(qat_model, float_model, features,
                                num_batches=DEFAULT_CALIBRATION_BATCHES,
                                batch_size=256):
    """Sets the fake-quant activation ranges of a QAT model from data.

    TFMOT creates every activation range as [-6, 6] and moves it towards
    the batch min / max by an EMA (decay 0.999) during training, so a short
    fine-tune ends with ranges several times wider than the activations:
    the int8 file then uses those coarse scales (see the module docstring).
    This sets each wrapped layer's output and post-activation range to the
    [min, max] of the same layer's output in `float_model` (the un-wrapped
    model, same layer names), widened to hold 0 as TFMOT does; the EMA
    then goes on from there during the fine-tune.

    Args:
        qat_model: `tf_keras.Model` from `quantize_apply`.
        float_model: `tf_keras.Model`. The model `qat_model` was made
            from, with the same weights (e.g. the `to_tf_keras` twin).
        features: dict of input name to NumPy array (one row per example).
        num_batches: int >= 1. Batches of `features` used. Defaults to
            `100`.
        batch_size: int >= 1. Defaults to `256`.

    Returns:
        A dict of wrapper name to the `(min, max)` it was given.

    Example:

    ```python
    qat_model = tfmot.quantization.keras.quantize_apply(annotated)
    calibrate_activation_ranges(qat_model, twin, features)
    ```
    """
    float_names = {layer.name for layer in float_model.layers}
    targets = []
    for layer in qat_model.layers:
        if not isinstance(layer, tfmot.quantization.keras.QuantizeWrapper):
            continue
        if layer.layer.name not in float_names:
            continue
        range_vars = _compat.quantizer_range_variables(layer)
        if range_vars:
            targets.append((layer.name, layer.layer.name, range_vars))
    if not targets:
        return {}
    probe = tf_keras.Model(
        float_model.inputs,
        [float_model.get_layer(name).output for _, name, _ in targets],
    )
    names = [t.name.split(":")[0] for t in float_model.inputs]
    total = next(iter(features.values())).shape[0]
    lows = [np.inf] * len(targets)
    highs = [-np.inf] * len(targets)
    for start in range(0, total, batch_size)[:num_batches]:
        batch = {n: features[n][start:start + batch_size] for n in names}
        outputs = tf.nest.flatten(probe(batch, training=False))
        for i, output in enumerate(outputs):
            values = np.asarray(output)
            lows[i] = min(lows[i], float(values.min()))
            highs[i] = max(highs[i], float(values.max()))
    ranges = {}
    rows = zip(targets, lows, highs, strict=True)
    for (wrapper, _, range_vars), low, high in rows:
        low, high = min(low, 0.0), max(high, 0.0)
        for variables in range_vars:
            variables["min_var"].assign(low)
            variables["max_var"].assign(high)
        ranges[wrapper] = (low, high)
    return ranges


class EmbeddingOutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """QAT of `TfKerasFeatureEmbedding`: fake-quantize its output only.

    The output is the concatenation of all feature embeddings, quantized as
    TFMOT's registry quantizes a Concatenate (8 bits, asymmetric, moving
    average range); the tables stay float, as TFMOT leaves `Embedding`
    tables.

    Example:

    ```python
    config = EmbeddingOutputQuantizeConfig()
    config.get_output_quantizers(twin_embedding)  # [MovingAverageQuantizer]
    ```
    """

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [
            tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8,
                per_axis=False,
                symmetric=False,
                narrow_range=False,
            )
        ]

    def get_config(self):
        return {}


QUANTIZE_CONFIGS = {
    "EmbeddingOutputQuantizeConfig": EmbeddingOutputQuantizeConfig,
}


class _EmbeddingAwareRegistry(
    tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry
):
    # `quantize_apply` gives an output-only quantizer to an unannotated
    # layer that feeds an annotated Dense, if the registry supports it: how
    # a Concatenate of embeddings gets one. Annotating the embedding layer
    # instead would make TFMOT fake-quantize the int32 id inputs it reads.
    def supports(self, layer):
        return type(layer) is TfKerasFeatureEmbedding or super().supports(layer)

    def get_quantize_config(self, layer):
        if type(layer) is TfKerasFeatureEmbedding:
            return EmbeddingOutputQuantizeConfig()
        return super().get_quantize_config(layer)


class _EmbeddingAwareScheme(
    tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme
):
    def get_quantize_registry(self):
        return _EmbeddingAwareRegistry()


def _annotate_dense(layer):
    if type(layer) is tf_keras.layers.Dense:
        return tfmot.quantization.keras.quantize_annotate_layer(layer)
    return layer
