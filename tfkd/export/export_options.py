"""Checks `to_tflite`'s arguments against the model, before any work."""

import json
import warnings

import keras
import tensorflow as tf

from tfkd._internal import model_utils
from tfkd._internal.arguments import validate_positive_int
from tfkd.export import id_mapping
from tfkd.export.sidecar import OUTPUT_KINDS
from tfkd.export.sidecar import QUANTIZATION_MODES

METRICS = ("auto", "auc", "rmse", None)


def refuse_distiller(model):
    """Raises if `model` is a Distiller: its student is what ships.

    Checked by class name (tfkd's or Keras' own `Distiller`), so the
    exporter does not import the distiller module.
    """
    names = {cls.__name__ for cls in type(model).__mro__}
    if "Distiller" in names and hasattr(model, "student"):
        raise TypeError(
            "Expected the student model, not the Distiller that trains it "
            "(the teacher does not ship): export `distiller.student`. "
            f"Received: model of type {type(model).__name__}"
        )


def resolve_output_kind(model, output_kind):
    """What the model's output is: `(output_kind, activation)`.

    ```
    head applies sigmoid/softmax  -> "probability"
    anything else                 -> "logit" (or "rating" if named)
    ```

    Args:
        model: `keras.Model`.
        output_kind: None (infer), `"logit"`, `"probability"` or
            `"rating"`.

    Returns:
        `(kind, activation)`; `activation` is `"sigmoid"`, `"softmax"` or
        None.

    Raises:
        ValueError: If `output_kind` contradicts the head, the head is a
            log-softmax, or a softmax over one unit.
    """
    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise ValueError(
            f"Expected `output_kind` to be one of {OUTPUT_KINDS} or None "
            f"(infer). Received: output_kind={output_kind!r}"
        )
    activation = model_utils.probability_activation(model)
    _check_head(model, activation)
    if output_kind == "rating":
        return output_kind, activation
    inferred = "probability" if activation else "logit"
    if output_kind == "logit" and activation:
        raise ValueError(
            f"The model's head applies a {activation}, so it outputs "
            "probabilities, not logits; an app would apply the sigmoid "
            'twice. Pass output_kind="probability" (or None to infer it). '
            f"Received: output_kind={output_kind!r}"
        )
    if output_kind == "probability" and not activation:
        raise ValueError(
            "Expected a model whose head applies a sigmoid or softmax for "
            'output_kind="probability"; this one outputs logits. Pass '
            'output_kind="logit" (or None to infer it). '
            f"Received: output_kind={output_kind!r}"
        )
    return inferred, activation


def _check_head(model, activation):
    if activation == "log_softmax":
        raise ValueError(
            "Expected a model that outputs logits or probabilities; its "
            "head applies a log_softmax (log-probabilities, which an app "
            "would read as logits). End it in a softmax, or drop the "
            "activation to export logits. Received: activation="
            "'log_softmax'"
        )
    units = model.outputs[0].shape[-1]
    if activation == "softmax" and units == 1:
        raise ValueError(
            "Expected a softmax over 2 or more units: over one unit it is "
            "always 1. Use a sigmoid for a single probability, or no "
            f"activation for a logit. Received: output shape "
            f"{tuple(model.outputs[0].shape)}"
        )


def validate_id_inputs(model, id_inputs):
    """Returns `id_inputs` as a sorted list (None stays None).

    Raises:
        TypeError: If it is not a list of str.
        ValueError: If a name is not an integer input of the model.
    """
    if id_inputs is None:
        return None
    if isinstance(id_inputs, str) or not all(
        isinstance(name, str) for name in id_inputs
    ):
        raise TypeError(
            "Expected `id_inputs` to be a list of input names or None. "
            f"Received: id_inputs={id_inputs!r}"
        )
    integer_inputs = id_mapping.integer_input_names(model)
    unknown = sorted(set(id_inputs) - set(integer_inputs))
    if unknown:
        raise ValueError(
            f"Expected `id_inputs` to name integer model inputs, from "
            f"{integer_inputs}. Received: unknown or non-integer inputs "
            f"{unknown}"
        )
    return sorted(id_inputs)


def validate_options(model, quantization, representative_data,
                     validation_data, options):
    """Type and range checks of `to_tflite`'s arguments.

    Args:
        model: the `model` argument.
        quantization: the `quantization` argument.
        representative_data: the `representative_data` argument.
        validation_data: the `validation_data` argument.
        options: dict with `max_metric_drop`, `allow_metric_drop`,
            `num_calibration_batches` and `latency_runs`.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected `model` to be a keras.Model. "
            f"Received: model of type {type(model).__name__}"
        )
    refuse_distiller(model)
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1:
        raise ValueError(
            "Expected a Functional or Sequential model with exactly one "
            f"output. Received: outputs={outputs}"
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
    if quantization == "int8" and first_features(representative_data) is None:
        raise ValueError(
            "Expected `representative_data` to hold at least one batch to "
            "calibrate int8. Received: an empty dataset"
        )
    _validate_non_negative("max_metric_drop", options["max_metric_drop"])
    if not isinstance(options["allow_metric_drop"], bool):
        raise TypeError(
            "Expected `allow_metric_drop` to be a bool. "
            f"Received: allow_metric_drop={options['allow_metric_drop']!r}"
        )
    validate_positive_int(
        "num_calibration_batches", options["num_calibration_batches"]
    )
    validate_positive_int("latency_runs", options["latency_runs"])


def first_features(dataset):
    """The features of a dataset's first element, or None if empty."""
    for element in dataset.take(1).as_numpy_iterator():
        return element[0] if isinstance(element, tuple) else element
    return None


def check_inputs_present(model, dataset, argument):
    """Raises, naming the key and the model, if `dataset` lacks an input.

    Extra keys are fine: every model is fed the inputs it declares, by
    name (`tfkd._internal.model_utils.select_inputs`).
    """
    if dataset is None:
        return
    features = first_features(dataset)
    try:
        model_utils.select_inputs(model, features, "model")
    except ValueError as e:
        raise ValueError(f"In `{argument}`: {e}") from e


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
            # _validate_quantization <- validate_options <-
            # checked_options <- to_tflite <- the caller's line.
            stacklevel=5,
        )


def _validate_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"Expected `{name}` to be a float. "
            f"Received: {name}={value!r}"
        )
    if not value >= 0:
        raise ValueError(f"Expected `{name}` >= 0. Received: {name}={value!r}")


def resolve_metric(metric, output_kind, validation_data):
    """`"auc"`, `"rmse"` or None, from `metric` and the output kind."""
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


def normalize_feature_spec(feature_spec, *datasets):
    """The feature spec as a JSON-ready dict, or None.

    Without one, the spec a tfkd loader left on `datasets` (e.g.
    `data.test`), so the sidecar carries the vocabularies an app needs.
    """
    from tfkd.datasets.pipelines import spec_of

    for dataset in datasets:
        if feature_spec is None and dataset is not None:
            feature_spec = spec_of(dataset)
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


def collect_batches(validation_data):
    """`[(features, labels), ...]` as NumPy, from `validation_data`."""
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
