"""`to_tflite`: convert, verify on LiteRT, and write atomically."""

import json
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfkd import evaluation
from tfkd.export import atomic_write
from tfkd.export.converter_utils import QUANTIZATION_MODES
from tfkd.export.converter_utils import SIGNATURE_KEY
from tfkd.export.converter_utils import convert_keras_model
from tfkd.export.export_report import ExportReport
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.metric_drop_error import MetricDropError
from tfkd.export.sidecar import build_sidecar
from tfkd.export.sidecar import sha256_of_file

OUTPUT_KINDS = ("logit", "probability", "rating")
METRICS = ("auto", "auc", "rmse", None)
# Ids no vocabulary contains: the model must treat them as id 0.
OUT_OF_RANGE_IDS = (-1, np.iinfo(np.int32).max)
# Out-of-range and id-0 requests take the same path after the id mapping,
# so any difference beyond float noise means the mapping is missing.
OUT_OF_RANGE_ATOL = 1e-6


def to_tflite(
    model,
    path,
    quantization=None,
    representative_data=None,
    validation_data=None,
    metric="auto",
    max_metric_drop=0.005,
    allow_metric_drop=False,
    output_kind="logit",
    feature_spec=None,
    num_calibration_batches=200,
    latency_runs=200,
    id_inputs=None,
):
    """Exports a Keras recommender to LiteRT, checked against Keras.

    The model is converted to a temporary file beside `path`, loaded in the
    LiteRT interpreter and compared with the Keras model: outputs on
    `validation_data` (max |Δ|), the metric before and after, out-of-range
    ids (-1 and 2**31 - 1 in every `id_inputs` feature must score like id
    0) and single-request latency.
    Only then are the model and its JSON sidecar (`path` with a `.json`
    suffix) moved into place with `os.replace`. A refusal or a crash leaves
    any previous files untouched and no temporary files behind. The model
    is replaced before the sidecar; if the process dies between the two
    renames, the old sidecar's `sha256` no longer matches the model.

    The metric compares the Keras model with the LiteRT model on the same
    data:

    ```
    drop = auc_keras - auc_litert      (metric="auc")
    drop = rmse_litert - rmse_keras    (metric="rmse")
    refuse if drop > max_metric_drop and not allow_metric_drop
    ```

    Args:
        model: `keras.Model`. A Functional model with one named input per
            feature (int32 ids) and one output.
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
        output_kind: `"logit"`, `"probability"` or `"rating"`. What the
            output means; recorded in the sidecar. Defaults to `"logit"`.
        feature_spec: a dict, an object with `to_dict()`, or None. Names,
            vocabulary sizes and lengths, copied into the sidecar.
            Defaults to `None`.
        num_calibration_batches: int >= 1. Elements of
            `representative_data` used to calibrate `"int8"`. Defaults to
            `200`.
        latency_runs: int >= 1. Timed batch-1 invokes. Defaults to `200`.
        id_inputs: list of str, or None. The inputs that carry ids and must
            map out-of-range values to id 0. Integer inputs that are not
            ids (counts, buckets computed by the app) are left out of the
            check by naming the others here; `[]` skips it. Defaults to
            `None`: every integer input.

    Returns:
        An `ExportReport`.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If an argument has a wrong value, or the model does
            not map out-of-range ids to id 0.
        FileNotFoundError: If the directory of `path` does not exist.
        MetricDropError: If the metric drops more than `max_metric_drop`
            and `allow_metric_drop` is False.

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
    _validate_options(
        model,
        quantization,
        representative_data,
        validation_data,
        output_kind,
        max_metric_drop,
        allow_metric_drop,
        num_calibration_batches,
        latency_runs,
    )
    id_inputs = _validate_id_inputs(model, id_inputs)
    metric = _resolve_metric(metric, output_kind, validation_data)
    spec = _normalize_feature_spec(feature_spec)
    batches = _collect_batches(validation_data)
    model_bytes = convert_keras_model(
        model, quantization, representative_data, num_calibration_batches
    )
    return _write_verified(
        model,
        path,
        model_bytes,
        batches,
        metric=metric,
        quantization=quantization or "none",
        max_metric_drop=max_metric_drop,
        allow_metric_drop=allow_metric_drop,
        output_kind=output_kind,
        feature_spec=spec,
        latency_runs=latency_runs,
        id_inputs=id_inputs,
    )


def _write_verified(model, path, model_bytes, batches, **options):
    measured = {}

    def verify(temp_model):
        runner = LiteRTRunner(temp_model)
        measured.update(
            _verify(runner, model, batches, options)
        )
        _check_metric_drop(measured, options)
        return build_sidecar(
            runner,
            signature_key=SIGNATURE_KEY,
            output_kind=options["output_kind"],
            feature_spec=options["feature_spec"],
            quantization=options["quantization"],
            metrics=measured,
            model_bytes=len(model_bytes),
            sha256=sha256_of_file(temp_model),
        )

    _, side_path = atomic_write.write_verified(path, model_bytes, verify)
    return ExportReport(
        path=path,
        bytes=len(model_bytes),
        quantization=options["quantization"],
        max_abs_diff=measured["max_abs_diff"],
        metric=measured["metric"],
        metric_before=measured["metric_before"],
        metric_after=measured["metric_after"],
        latency_us_p50=measured["latency_us_p50"],
        sidecar_path=side_path,
    )


def _verify(runner, model, batches, options):
    """Compares the LiteRT file with the Keras model; returns the numbers."""
    metric, latency_runs = options["metric"], options["latency_runs"]
    if len(runner.output_names) != 1:
        raise ValueError(
            "Expected a model with one output. "
            f"Received: outputs={runner.output_names}"
        )
    _check_out_of_range_ids(runner, options["id_inputs"])
    if not batches:
        batches = [(_id_zero_features(runner, batch_size=1), None)]
    keras_out, lite_out, labels = _predict_both(runner, model, batches)
    result = {
        "max_abs_diff": float(np.max(np.abs(keras_out - lite_out))),
        "metric": metric,
        "metric_before": None,
        "metric_after": None,
    }
    if metric is not None:
        metric_fn = getattr(evaluation, metric)
        result["metric_before"] = metric_fn(labels, keras_out)
        result["metric_after"] = metric_fn(labels, lite_out)
    first = {name: batches[0][0][name][:1] for name in runner.input_names}
    result["latency_us_p50"] = runner.latency_us_p50(first, latency_runs)
    return result


def _predict_both(runner, model, batches):
    output_name = runner.output_names[0]
    keras_out, lite_out, labels = [], [], []
    for features, batch_labels in batches:
        missing = sorted(set(runner.input_names) - set(features))
        if missing:
            raise ValueError(
                f"`validation_data` lacks model inputs {missing}. "
                f"Received: features={sorted(features)}"
            )
        features = {name: features[name] for name in runner.input_names}
        keras_out.append(np.asarray(model(features, training=False)))
        lite_out.append(runner(features)[output_name])
        if batch_labels is not None:
            labels.append(np.asarray(batch_labels).reshape(-1))
    labels = np.concatenate(labels) if labels else None
    return np.concatenate(keras_out), np.concatenate(lite_out), labels


def _check_out_of_range_ids(runner, id_inputs):
    if not id_inputs:
        return
    output_name = runner.output_names[0]
    reference = runner(_id_zero_features(runner, 1))[output_name]
    for bad_id in OUT_OF_RANGE_IDS:
        features = {
            name: np.full_like(array, bad_id) if name in id_inputs else array
            for name, array in _id_zero_features(runner, 1).items()
        }
        try:
            scores = runner(features)[output_name]
        except RuntimeError as e:
            raise ValueError(_out_of_range_message(bad_id, str(e))) from e
        if not np.allclose(scores, reference, atol=OUT_OF_RANGE_ATOL):
            detail = f"scores {scores.ravel()} != {reference.ravel()}"
            raise ValueError(_out_of_range_message(bad_id, detail))


def _out_of_range_message(bad_id, detail):
    return (
        "Expected the model to map out-of-range ids (< 0 or >= vocabulary "
        "size) to id 0 before each embedding lookup (as "
        "tfkd.models.FeatureEmbedding does), "
        "so an app can send any id. If some integer inputs are not ids, "
        "name the ones that are in `id_inputs=[...]`. Received: "
        f"id={bad_id} gives {detail}"
    )


def _id_zero_features(runner, batch_size):
    features = {}
    for name, details in runner.input_details.items():
        shape = [batch_size] + [int(d) for d in details["shape"][1:]]
        features[name] = np.zeros(shape, dtype=details["dtype"])
    return features


def _check_metric_drop(measured, options):
    metric = measured["metric"]
    if metric is None:
        return
    before, after = measured["metric_before"], measured["metric_after"]
    drop = before - after if metric == "auc" else after - before
    if drop > options["max_metric_drop"] and not options["allow_metric_drop"]:
        raise MetricDropError(
            metric,
            before,
            after,
            drop,
            options["max_metric_drop"],
            options["quantization"],
        )


def _validate_options(
    model,
    quantization,
    representative_data,
    validation_data,
    output_kind,
    max_metric_drop,
    allow_metric_drop,
    num_calibration_batches,
    latency_runs,
):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected `model` to be a keras.Model. "
            f"Received: model of type {type(model).__name__}"
        )
    if len(model.outputs or []) != 1:
        raise ValueError(
            "Expected a model with exactly one output. "
            f"Received: outputs={model.outputs}"
        )
    _validate_quantization(quantization, representative_data)
    for name, data in (
        ("representative_data", representative_data),
        ("validation_data", validation_data),
    ):
        if data is not None and not isinstance(data, tf.data.Dataset):
            raise TypeError(
                f"Expected `{name}` to be a tf.data.Dataset or None. "
                f"Received: {name} of type {type(data).__name__}"
            )
    if quantization == "int8" and _is_empty(representative_data):
        raise ValueError(
            "Expected `representative_data` to hold at least one batch to "
            "calibrate int8. Received: an empty dataset"
        )
    if output_kind not in OUTPUT_KINDS:
        raise ValueError(
            f"Expected `output_kind` to be one of {OUTPUT_KINDS}. "
            f"Received: output_kind={output_kind!r}"
        )
    _validate_number("max_metric_drop", max_metric_drop, float, minimum=0)
    if not isinstance(allow_metric_drop, bool):
        raise TypeError(
            "Expected `allow_metric_drop` to be a bool. "
            f"Received: allow_metric_drop={allow_metric_drop!r}"
        )
    _validate_number(
        "num_calibration_batches", num_calibration_batches, int, minimum=1
    )
    _validate_number("latency_runs", latency_runs, int, minimum=1)


def _validate_id_inputs(model, id_inputs):
    integer_inputs = sorted(
        tensor.name for tensor in model.inputs
        if "int" in str(tensor.dtype)
    )
    if id_inputs is None:
        return integer_inputs
    if isinstance(id_inputs, str) or not all(
        isinstance(name, str) for name in id_inputs
    ):
        raise TypeError(
            "Expected `id_inputs` to be a list of input names or None. "
            f"Received: id_inputs={id_inputs!r}"
        )
    unknown = sorted(set(id_inputs) - set(integer_inputs))
    if unknown:
        raise ValueError(
            f"Expected `id_inputs` to name integer model inputs, from "
            f"{integer_inputs}. Received: unknown or non-integer inputs "
            f"{unknown}"
        )
    return sorted(id_inputs)


def _is_empty(dataset):
    for _ in dataset.take(1):
        return False
    return True


def _validate_quantization(quantization, representative_data):
    if quantization not in QUANTIZATION_MODES:
        raise ValueError(
            f"Expected `quantization` to be one of {QUANTIZATION_MODES}. "
            f"Received: quantization={quantization!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "`quantization='int8'` calibrates activation ranges: pass "
            "`representative_data` (a tf.data.Dataset of training batches). "
            "Received: representative_data=None"
        )
    if quantization != "int8" and representative_data is not None:
        warnings.warn(
            "`representative_data` is only used with `quantization='int8'`; "
            f"it is ignored for quantization={quantization!r}.",
            # _validate_quantization <- _validate_options <- to_tflite <-
            # the caller's line.
            stacklevel=4,
        )


def _validate_number(name, value, kind, minimum):
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise TypeError(
            f"Expected `{name}` to be a {kind.__name__}. "
            f"Received: {name}={value!r}"
        )
    if not value >= minimum:
        raise ValueError(
            f"Expected `{name}` >= {minimum}. Received: {name}={value!r}"
        )


def _resolve_metric(metric, output_kind, validation_data):
    if metric not in METRICS:
        raise ValueError(
            f"Expected `metric` to be one of {METRICS}. "
            f"Received: metric={metric!r}"
        )
    if metric == "auto":
        if validation_data is None:
            return None
        return "rmse" if output_kind == "rating" else "auc"
    if metric is not None and validation_data is None:
        raise ValueError(
            f"`metric={metric!r}` is measured on `validation_data`; pass "
            "it, or `metric=None`. Received: validation_data=None"
        )
    expected = "rmse" if output_kind == "rating" else "auc"
    if metric is not None and metric != expected:
        raise ValueError(
            f"Expected `metric={expected!r}` (or None) for "
            f"output_kind={output_kind!r}. Received: metric={metric!r}"
        )
    return metric


def _normalize_feature_spec(feature_spec):
    if feature_spec is None:
        return None
    if callable(getattr(feature_spec, "to_dict", None)):
        feature_spec = feature_spec.to_dict()
    if not isinstance(feature_spec, dict):
        raise TypeError(
            "Expected `feature_spec` to be a dict, an object with "
            "`to_dict()`, or None. "
            f"Received: feature_spec of type {type(feature_spec).__name__}"
        )
    try:
        return json.loads(json.dumps(feature_spec))
    except (TypeError, ValueError) as e:
        raise ValueError(
            "Expected `feature_spec` to be JSON-serializable (it goes in "
            f"the sidecar). Received: feature_spec={feature_spec!r}"
        ) from e


def _collect_batches(validation_data):
    if validation_data is None:
        return []
    batches = []
    for element in validation_data.as_numpy_iterator():
        if not (isinstance(element, tuple) and len(element) in (2, 3)):
            raise ValueError(
                "Expected `validation_data` elements to be (features, "
                "labels) tuples. Received: element of type "
                f"{type(element).__name__}"
            )
        batches.append((element[0], element[1]))
    if not batches:
        raise ValueError(
            "Expected `validation_data` to hold at least one batch. "
            "Received: an empty dataset"
        )
    return batches
