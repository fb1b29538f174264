"""Quantization-aware and pruning fine-tunes of a student, shipped as int8.

Both start from a trained Keras 3 student, rebuild it in tf_keras
(`to_tf_keras`, exact), wrap its layers with TFMOT, fine-tune it with the
same distillation loss as `tfkd.Distiller` against teacher soft targets
computed once, convert it to full-integer int8 LiteRT and check the file
with the LiteRT interpreter before an atomic write.

Only the Dense layers are QAT-annotated: TFMOT's whole-model
`quantize_model` fails on the int32 id inputs (inside its `QuantizeLayer`).
The embedding layer that feeds the first Dense (`FeatureEmbedding`, or the
Concatenate of per-feature embeddings in older models) gets an output
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
against 0.8504 for the QAT model). The tf_keras twin of the pooling
also computes `total * (1 / count)`, so no DIV with a data numerator is
left (`tf_keras_bridge.TfKerasMaskedMeanPooling`).
"""

import dataclasses
import datetime
import gzip
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfkd.export import atomic_write
from tfkd import evaluation
from tfkd.export.converter_utils import SIGNATURE_KEY
from tfkd.export.converter_utils import strip_tensor_names
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.sidecar import OUTPUT_MEANINGS
from tfkd.export.sidecar import SIDECAR_FORMAT_VERSION
from tfkd.export.sidecar import sha256_of_file
from tfkd.export.sidecar import tensor_entries
from tfkd.export.sidecar import tfkd_version
from tfkd.export.tf_keras_bridge import CUSTOM_OBJECTS
from tfkd.export.tf_keras_bridge import TfKerasFeatureEmbedding
from tfkd.export.tf_keras_bridge import to_tf_keras

DEFAULT_CALIBRATION_BATCHES = 100
SHUFFLE_SEED = 0


@dataclasses.dataclass(frozen=True)
class CompressionReport:
    """The result of `quantization_aware_finetune` or `prune_finetune`.

    Args:
        path: str. The int8 `.tflite` file written.
        bytes: int. Its size.
        gzip_bytes: int. Its gzip-compressed size (what pruning's zeros
            save in an app download).
        method: str. `"qat"` or `"pruning"`.
        auc_keras: float or None. The fine-tuned tf_keras model's AUC on
            `validation_data`.
        auc_litert: float or None. The int8 file's AUC on the same data.
        sparsity: float or None. Share of zeros in the pruned kernels
            (pruning only).
        input_names: tuple of str. Inputs of the LiteRT signature.
        sidecar_path: str. The JSON sidecar written beside the model.
        model: `tf_keras.Model`. The fine-tuned model (QAT-wrapped, or
            pruned and stripped). Not part of `to_dict()`.

    Example:

    ```python
    report = quantization_aware_finetune(student, teacher, data.train,
                                         "export/qat.tflite")
    print(report.to_dict())
    ```
    """

    path: str
    bytes: int
    gzip_bytes: int
    method: str
    auc_keras: float | None
    auc_litert: float | None
    sparsity: float | None
    input_names: tuple
    sidecar_path: str
    model: object = dataclasses.field(repr=False, compare=False)

    def to_dict(self):
        """Returns the report, without the model, as a JSON-ready dict."""
        result = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "model"
        }
        result["input_names"] = list(self.input_names)
        return result


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
    _validate_alpha_temperature(alpha, temperature)

    def loss(y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        s = tf.reshape(tf.cast(y_pred, tf.float32), [-1])
        label = y_true[:, 0]
        t = y_true[:, 1]
        hard = tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=s)
        t_scaled = t / temperature
        s_scaled = s / temperature
        kl = (
            tf.nn.softplus(-s_scaled)
            - tf.nn.softplus(-t_scaled)
            + (1.0 - tf.sigmoid(t_scaled)) * (s_scaled - t_scaled)
        )
        # Rounding can leave -1e-8 where the true value is 0.
        soft = tf.maximum(kl, 0.0) * temperature**2
        return alpha * hard + (1.0 - alpha) * soft

    return loss


def _validate_alpha_temperature(alpha, temperature):
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}"
        )
    if not temperature > 0:
        raise ValueError(
            f"`temperature` must be > 0. Received: temperature={temperature!r}"
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


def quantization_aware_finetune(
    student,
    teacher_or_logits,
    train_ds,
    path,
    validation_data=None,
    epochs=1,
    alpha=0.5,
    temperature=2.0,
    learning_rate=1e-4,
    num_calibration_batches=DEFAULT_CALIBRATION_BATCHES,
    verbose=0,
):
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
        verbose: int. Passed to `fit`. Defaults to `0`.

    Returns:
        A `CompressionReport` with `method="qat"`; `report.model` is the
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
    print(report.bytes, report.auc_litert)
    ```
    """
    path = atomic_write.validate_model_path(path)
    _validate_alpha_temperature(alpha, temperature)
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
    batch_size = _batch_size(train_ds)
    calibrate_activation_ranges(
        qat_model, twin, features, num_calibration_batches, batch_size
    )
    _fit(qat_model, dataset, epochs, alpha, temperature, learning_rate,
         verbose)
    model_bytes = _convert_int8(qat_model, features, num_calibration_batches,
                                batch_size)
    return _write_and_report(
        qat_model, path, model_bytes, validation_data, "qat", None
    )


def prune_finetune(
    student,
    teacher_or_logits,
    train_ds,
    path,
    validation_data=None,
    target_sparsity=0.5,
    epochs=1,
    prune_embeddings=True,
    alpha=0.5,
    temperature=2.0,
    learning_rate=1e-4,
    num_calibration_batches=DEFAULT_CALIBRATION_BATCHES,
    verbose=0,
):
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
        verbose: int. Passed to `fit`. Defaults to `0`.

    Returns:
        A `CompressionReport` with `method="pruning"` and the measured
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
    _validate_alpha_temperature(alpha, temperature)
    dataset, features, _, _ = soft_target_dataset(teacher_or_logits, train_ds)
    steps = int(dataset.cardinality()) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=target_sparsity,
        begin_step=0,
        end_step=max(1, steps // 2),
        frequency=max(1, steps // 20),
    )
    prunable = (tf_keras.layers.Dense,)
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
    _fit(pruned, dataset, epochs, alpha, temperature, learning_rate,
         verbose, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    sparsity = weight_sparsity(stripped, prunable)
    model_bytes = _convert_int8(stripped, features, num_calibration_batches,
                                _batch_size(train_ds))
    return _write_and_report(
        stripped, path, model_bytes, validation_data, "pruning", sparsity
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
        range_vars = [getattr(layer, "_output_quantizer_vars", None)]
        for activation in getattr(layer, "_quantize_activations", []):
            range_vars.append(
                getattr(activation, "_post_activation_vars", None)
            )
        range_vars = [v for v in range_vars if v]
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
    for (wrapper, _, range_vars), low, high in zip(targets, lows, highs):
        low, high = min(low, 0.0), max(high, 0.0)
        for variables in range_vars:
            variables["min_var"].assign(low)
            variables["max_var"].assign(high)
        ranges[wrapper] = (low, high)
    return ranges


class EmbeddingOutputQuantizeConfig(
    tfmot.quantization.keras.QuantizeConfig
):
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
                num_bits=8, per_axis=False, symmetric=False,
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
        return type(layer) is TfKerasFeatureEmbedding or super().supports(
            layer
        )

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


def _fit(model, dataset, epochs, alpha, temperature, learning_rate, verbose,
         callbacks=None):
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss=distillation_loss(alpha, temperature),
    )
    model.fit(dataset, epochs=epochs, verbose=verbose, callbacks=callbacks)


def _batch_size(train_ds):
    for element in train_ds.take(1):
        return int(np.asarray(element[1]).reshape(-1).shape[0])
    raise ValueError("Expected `train_ds` to hold at least one batch.")


def _convert_int8(model, features, num_batches, batch_size):
    names = [t.name.split(":")[0] for t in model.inputs]

    def representative():
        total = next(iter(features.values())).shape[0]
        # Full batches only: the TF calibrator sizes tensors on the first
        # sample and fails on a smaller last batch.
        for start in range(0, total - batch_size + 1, batch_size)[
            :num_batches
        ]:
            yield {
                name: features[name][start:start + batch_size]
                for name in names
            }

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*tf.lite.Interpreter is deprecated"
        )
        # The inputs are int32 ids, which are never quantized; the
        # converter still asks for their ranges.
        warnings.filterwarnings(
            "ignore", message="Statistics for quantized inputs"
        )
        return strip_tensor_names(converter.convert())


def _predict(model, runner, validation_data):
    keras_out, lite_out, labels = [], [], []
    for element in validation_data.as_numpy_iterator():
        batch, label = element[0], element[1]
        inputs = {name: batch[name] for name in runner.input_names}
        keras_out.append(np.asarray(model(inputs, training=False)))
        lite_out.append(runner(inputs)[runner.output_names[0]])
        labels.append(np.asarray(label).reshape(-1))
    return (
        np.concatenate(keras_out).reshape(-1),
        np.concatenate(lite_out).reshape(-1),
        np.concatenate(labels),
    )


def _write_and_report(model, path, model_bytes, validation_data, method,
                      sparsity):
    measured = {"auc_keras": None, "auc_litert": None}

    def verify(temp_path):
        runner = LiteRTRunner(temp_path)
        expected = sorted(t.name.split(":")[0] for t in model.inputs)
        if runner.input_names != expected:
            raise ValueError(
                f"Expected the LiteRT signature inputs {expected}. "
                f"Received: {runner.input_names}"
            )
        if validation_data is not None:
            keras_out, lite_out, labels = _predict(
                model, runner, validation_data
            )
            measured["auc_keras"] = evaluation.auc(labels, keras_out)
            measured["auc_litert"] = evaluation.auc(labels, lite_out)
        measured["input_names"] = tuple(runner.input_names)
        return _sidecar(runner, method, measured, sparsity, len(model_bytes),
                        sha256_of_file(temp_path))

    _, side_path = atomic_write.write_verified(path, model_bytes, verify)
    return CompressionReport(
        path=path,
        bytes=len(model_bytes),
        gzip_bytes=len(gzip.compress(model_bytes, mtime=0)),
        method=method,
        auc_keras=measured["auc_keras"],
        auc_litert=measured["auc_litert"],
        sparsity=sparsity,
        input_names=measured["input_names"],
        sidecar_path=side_path,
        model=model,
    )


def _sidecar(runner, method, measured, sparsity, model_bytes, sha256):
    return {
        "format_version": SIDECAR_FORMAT_VERSION,
        "tfkd_version": tfkd_version(),
        "task": "ranking",
        "signature_key": SIGNATURE_KEY,
        "inputs": tensor_entries(runner.input_details),
        "outputs": [
            dict(entry, kind="logit", meaning=OUTPUT_MEANINGS["logit"])
            for entry in tensor_entries(runner.output_details)
        ],
        "quantization": "int8",
        "compression": method,
        "metrics": {
            "auc_keras": measured["auc_keras"],
            "auc_litert": measured["auc_litert"],
            "sparsity": sparsity,
        },
        "bytes": model_bytes,
        "sha256": sha256,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
