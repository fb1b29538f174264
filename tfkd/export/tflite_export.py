"""`to_tflite`: convert, verify on LiteRT, and write atomically.

`write_checked` is the one tail every export path ends in (PTQ here, QAT
and pruning in `compression_finetune`).
"""

import gzip
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfkd import evaluation
from tfkd.export import atomic_write
from tfkd.export import export_options
from tfkd.export import id_mapping
from tfkd.export import litert_checks
from tfkd.export import raw_ids
from tfkd.export import runtime_target
from tfkd.export.converter_utils import convert_keras_model
from tfkd.export.export_report import ExportReport
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.sidecar import build_sidecar
from tfkd.export.sidecar import ranking_outputs
from tfkd.export.sidecar import sha256_of_file
from tfkd.export.sidecar import unknown_ids_entry

# Timed batch-1 invokes behind `latency_us_p50`.
DEFAULT_LATENCY_RUNS = 200


def to_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = None,
    representative_data: tf.data.Dataset | None = None,
    validation_data: tf.data.Dataset | None = None,
    metric: str | None = "auto",
    max_metric_drop: float = 0.005,
    allow_metric_drop: bool = False,
    output_kind: str | None = None,
    feature_spec: Any = None,
    num_calibration_batches: int = 200,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    id_inputs: list[str] | None = None,
    min_runtime: str | None = runtime_target.DEFAULT_MIN_RUNTIME,
) -> ExportReport:
    """Exports a Keras recommender to LiteRT, checked against Keras.

    Before conversion, every `keras.layers.Embedding` whose ids come
    straight from an integer input (or through reshapes and casts) gets
    the range mapping of `FeatureEmbedding`, on the same weights, so
    an unknown id scores like id 0 instead of crashing the interpreter; a
    model that maps its ids itself (as `tfkd.models` do) is converted
    unchanged. Under a `mixed_float16`/`mixed_bfloat16` policy the file
    computes in float32.

    The model is converted to a temporary file beside `path`, loaded in the
    LiteRT interpreter and compared with the Keras model as the user built
    it: outputs on `validation_data` (max |Δ|), the metric before and
    after, out-of-range ids (-1 and 2**31 - 1 in each id input must score
    like id 0) and single-request latency. Before any of that, the file's
    operators, versions and input types are checked against the oldest
    runtime it must run on (`min_runtime`: TF Lite 2.14 by default, the
    Android and iOS libraries apps pin), so a file that would fail at
    load or first invoke there is refused instead of shipped. Every
    model is fed, by name, exactly the inputs it declares; other columns
    are ignored.
    Only then are the model and its JSON sidecar (`path` with a `.json`
    suffix) moved into place with `os.replace`, under a lock on
    `<path>.lock` so that concurrent exports to one path take turns. A
    refusal or a crash leaves any previous files untouched and no
    temporary files behind; files get the user's umask.

    The metric compares the Keras model with the LiteRT model on the same
    data:

    ```
    drop = auc_keras - auc_litert      (metric="auc")
    drop = rmse_litert - rmse_keras    (metric="rmse")
    refuse if drop > max_metric_drop and not allow_metric_drop
    ```

    Args:
        model: `keras.Model`. A Functional or Sequential model with one
            named input per feature and one output. Not a
            `tfkd.Distiller`: export its `student`.
        path: str or os.PathLike. Destination, ending in `.tflite`; its
            directory must exist.
        quantization: None (float32), `"dynamic"` (int8 weights, float
            activations), `"float16"` (float16 weights) or `"int8"` (full
            integer, calibrated on `representative_data`). Defaults to
            `None`.
        representative_data: `tf.data.Dataset` or None. Batches of
            `(features, labels)` or `features`; required for `"int8"`.
            Defaults to `None`.
        validation_data: `tf.data.Dataset` or None. Batches of
            `(features, labels)` for the parity and metric checks. Without
            it only a batch of id-0 requests is compared. Defaults to
            `None`.
        metric: `"auto"`, `"auc"`, `"rmse"` or None. `"auto"` picks AUC for
            `"logit"`/`"probability"` outputs and RMSE for `"rating"` when
            `validation_data` is given; None measures no metric. Defaults
            to `"auto"`.
        max_metric_drop: float >= 0. Largest allowed AUC drop or RMSE
            increase. Defaults to `0.005`.
        allow_metric_drop: bool. Write the file even when the metric drops
            more than `max_metric_drop`. Defaults to `False`.
        output_kind: None, `"logit"`, `"probability"` or `"rating"`. What
            the output means; recorded in the sidecar. None infers it:
            `"probability"` when the head applies a sigmoid or softmax
            (`tfkd._internal.model_utils.probability_activation`), else
            `"logit"`.
            Defaults to `None`.
        feature_spec: a dict, an object with `to_dict()`, or None. Names,
            vocabulary sizes, lengths and vocabularies, copied into the
            sidecar (an app maps its raw ids with them). Defaults to
            `None`: the spec of `validation_data` or
            `representative_data` when a tfkd loader made them.
        num_calibration_batches: int >= 1. Elements of
            `representative_data` used to calibrate `"int8"`. Defaults to
            `200`.
        latency_runs: int >= 1. Timed batch-1 invokes. Defaults to `200`.
        id_inputs: list of str, or None. The inputs that carry ids, whose
            out-of-range values must score like id 0 on LiteRT. The inputs
            the exporter maps are always checked too. Defaults to `None`:
            every integer input from which an embedding lookup is reached
            (a count or bucket that reaches none is left alone).
        min_runtime: `"2.14"` or None. The oldest LiteRT the file must
            run on; its ops and op versions are recorded in the sidecar's
            `runtime`. None checks only against the installed LiteRT.
            Defaults to `"2.14"`.

    Returns:
        An `ExportReport`.

    Raises:
        TypeError: If an argument has the wrong type, or `model` is a
            Distiller.
        ValueError: If an argument has a wrong value, `output_kind`
            contradicts the model's head, the data lacks a model input, or
            out-of-range ids do not score like id 0.
        FileNotFoundError: If the directory of `path` does not exist.
        MetricDropError: If the metric drops more than `max_metric_drop`
            and `allow_metric_drop` is False.
        RuntimeCompatibilityError: If the file needs an op that
            `min_runtime` lacks (a `ValueError`).

    Example:

    ```python
    report = tfkd.export.to_tflite(
        student,
        "export/student.tflite",
        quantization="int8",
        representative_data=train_ds,
        validation_data=val_ds,
    )
    print(report.bytes, report.metric_before, report.metric_after)
    ```
    """
    path = atomic_write.validate_model_path(path)
    options = checked_options(
        model,
        quantization,
        representative_data,
        validation_data,
        {
            "metric": metric,
            "output_kind": output_kind,
            "id_inputs": id_inputs,
            "max_metric_drop": max_metric_drop,
            "allow_metric_drop": allow_metric_drop,
            "num_calibration_batches": num_calibration_batches,
            "latency_runs": latency_runs,
            "feature_spec": feature_spec,
            "min_runtime": min_runtime,
        },
    )
    batches = export_options.collect_batches(validation_data)
    export_model, mapped = id_mapping.map_unknown_ids(model)
    options["unknown_ids"] = _unknown_ids(
        model, options.pop("id_inputs"), mapped
    )
    model_bytes = convert_keras_model(
        export_model, quantization, representative_data,
        num_calibration_batches, options["min_runtime"],
    )
    return write_checked(model, path, model_bytes, batches, options)


def checked_options(model, quantization, representative_data,
                    validation_data, options):
    """Validates `to_tflite`'s arguments; returns the resolved options.

    Shared by every path that ends in `write_checked` (PTQ here, QAT and
    pruning in `compression_finetune`), so each refuses the same input
    with the same message.

    Args:
        model: `keras.Model`. The Keras 3 model the user exports.
        quantization: None or one of `QUANTIZATION_MODES`.
        representative_data: `tf.data.Dataset` or None.
        validation_data: `tf.data.Dataset` or None.
        options: dict with `to_tflite`'s other arguments by name.

    Returns:
        A dict of resolved options for `write_checked` (`id_inputs` still
        to be turned into `unknown_ids`).
    """
    export_options.validate_options(
        model, quantization, representative_data, validation_data, options
    )
    min_runtime = options.get(
        "min_runtime", runtime_target.DEFAULT_MIN_RUNTIME
    )
    runtime_target.validate_min_runtime(min_runtime)
    output_kind, activation = export_options.resolve_output_kind(
        model, options["output_kind"]
    )
    for argument, data in (
        ("representative_data", representative_data),
        ("validation_data", validation_data),
    ):
        export_options.check_inputs_present(model, data, argument)
    return {
        "metric": export_options.resolve_metric(
            options["metric"], output_kind, validation_data
        ),
        "quantization": quantization or "none",
        "max_metric_drop": options["max_metric_drop"],
        "allow_metric_drop": options["allow_metric_drop"],
        "output_kind": output_kind,
        "activation": activation,
        "latency_runs": options["latency_runs"],
        "id_inputs": export_options.validate_id_inputs(
            model, options["id_inputs"]
        ),
        "feature_spec": export_options.normalize_feature_spec(
            options["feature_spec"], validation_data, representative_data
        ),
        "min_runtime": min_runtime,
    }


def _unknown_ids(model, id_inputs, mapped):
    if id_inputs is None:
        id_inputs = id_mapping.lookup_input_names(model)
    return unknown_ids_entry(set(id_inputs) | set(mapped), mapped)


def unknown_ids_of(model):
    """The `unknown_ids` entry of a model that maps its ids itself.

    For the QAT and pruning paths, which convert the fine-tuned tf_keras
    twin and so cannot add the exporter's id mapping: every lookup input
    is still checked on LiteRT, so a plain `Embedding` there is refused
    instead of shipped unsafe.

    Args:
        model: `keras.Model`. The Keras 3 model the twin was built from.

    Returns:
        A dict from `unknown_ids_entry`.
    """
    return _unknown_ids(model, None, {})


def write_checked(reference, path, model_bytes, batches, options,
                  compression=None, extra_metrics=None,
                  report_class=ExportReport, **report_fields):
    """Checks converted bytes on LiteRT, writes them, returns the report.

    The one tail of every export: parity with `reference` on `batches`,
    the unknown-id check, the metric drop, latency, then the atomic write
    of the file and its sidecar under the destination's lock.

    Args:
        reference: the model the file must match (Keras 3, or the tf_keras
            twin that QAT / pruning fine-tuned).
        path: str. Validated destination.
        model_bytes: bytes. The converted `.tflite` model.
        batches: list of `(features, labels or None)` from
            `export_options.collect_batches`.
        options: dict from `checked_options`, with `unknown_ids`.
        compression: None, `"qat"` or `"pruning"`, for the sidecar and
            the report. Defaults to `None`.
        extra_metrics: dict or None. More measured values for the
            sidecar's `metrics` (e.g. pruning's sparsity). Defaults to
            `None`.
        report_class: `ExportReport` or a subclass. Defaults to
            `ExportReport`.
        **report_fields: the other fields of `report_class`.

    Returns:
        A `report_class` instance.
    """
    measured = {}
    runtime = runtime_target.check_runtime(
        model_bytes, options["min_runtime"]
    )

    def verify(temp_model):
        runner = LiteRTRunner(temp_model)
        measured.update(_verify(runner, reference, batches, options))
        litert_checks.check_metric_drop(
            measured,
            options["max_metric_drop"],
            options["allow_metric_drop"],
            options["quantization"],
        )
        return build_sidecar(
            runner,
            task="ranking",
            outputs=ranking_outputs(
                runner, options["output_kind"], options["activation"]
            ),
            quantization=options["quantization"],
            metrics=dict(measured, **(extra_metrics or {})),
            sha256=sha256_of_file(temp_model),
            model_bytes=len(model_bytes),
            feature_spec=options["feature_spec"],
            unknown_ids=options["unknown_ids"],
            compression=compression,
            runtime=runtime,
        )

    _, side_path = atomic_write.write_verified(path, model_bytes, verify)
    if compression is not None:
        report_fields["compression"] = compression
    return report_class(
        path=path,
        bytes=len(model_bytes),
        gzip_bytes=len(gzip.compress(model_bytes, mtime=0)),
        quantization=options["quantization"],
        max_abs_diff=measured["max_abs_diff"],
        metric=measured["metric"],
        metric_before=measured["metric_before"],
        metric_after=measured["metric_after"],
        latency_us_p50=measured["latency_us_p50"],
        invoke_us_p50=measured["invoke_us_p50"],
        lookup_invoke_us_p50=measured["lookup_invoke_us_p50"],
        sidecar_path=side_path,
        output_kind=options["output_kind"],
        unknown_ids=options["unknown_ids"],
        min_runtime=runtime["min_runtime"],
        **report_fields,
    )


def _verify(runner, model, batches, options):
    """Compares the LiteRT file with the Keras model; returns the numbers."""
    metric, latency_runs = options["metric"], options["latency_runs"]
    if len(runner.output_names) != 1:
        raise ValueError(
            "Expected a model with one output. "
            f"Received: outputs={runner.output_names}"
        )
    unknown_ids = options["unknown_ids"]
    litert_checks.check_unknown_ids(
        runner, unknown_ids["checked_inputs"], unknown_ids["mapped_inputs"]
    )
    if not batches:
        zeros = litert_checks.id_zero_features(runner, batch_size=1)
        batches = [(zeros, None)]
    keras_out, lite_out, labels = litert_checks.predict_both(
        runner, model, batches
    )
    result = {
        "max_abs_diff": float(np.max(np.abs(keras_out - lite_out))),
        "metric": metric,
        "metric_before": None,
        "metric_after": None,
    }
    if metric is not None:
        # AUC ranks and RMSE compares raw outputs: neither applies a
        # sigmoid, so logits and probabilities are both scored as given.
        metric_fn = getattr(evaluation, metric)
        result["metric_before"] = metric_fn(labels, keras_out)
        result["metric_after"] = metric_fn(labels, lite_out)
    first = {name: batches[0][0][name][:1] for name in runner.input_names}
    result["latency_us_p50"] = runner.latency_us_p50(first, latency_runs)
    result["invoke_us_p50"] = runner.invoke_us_p50(first, latency_runs)
    result["lookup_invoke_us_p50"] = raw_ids.lookup_invoke_us_p50(
        runner, first, options["feature_spec"], latency_runs
    )
    return result
