"""What QAT and pruning fine-tunes share: soft targets, the distillation
loss, int8 conversion, the LiteRT check and the report.

Both fine-tunes start from a trained Keras 3 student, rebuild it in
tf_keras (`to_tf_keras`, exact), wrap its layers with TFMOT, fine-tune it
with the same distillation loss as `tfkd.Distiller` against teacher soft
targets computed once, convert it to full-integer int8 LiteRT and check
the file with the LiteRT interpreter before an atomic write.
"""

import dataclasses
import datetime
import gzip
import warnings

import keras
import numpy as np
import tensorflow as tf
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
    validate_alpha_temperature(alpha, temperature)

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


def validate_alpha_temperature(alpha, temperature):
    """Refuses alpha outside [0, 1] or a temperature <= 0."""
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


def convert_int8(model, features, num_batches, batch_size):
    """Converts a tf_keras model to full-int8 LiteRT bytes."""
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


def write_and_report(model, path, model_bytes, validation_data, method,
                      sparsity):
    """Checks the file on LiteRT, writes it atomically, returns the report."""
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
