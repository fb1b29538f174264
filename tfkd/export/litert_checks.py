"""Checks a converted LiteRT file against the Keras model it came from."""

import numpy as np

from tfkd._internal import model_utils
from tfkd.export.metric_drop_error import MetricDropError

# Ids no vocabulary contains: the model must treat them as id 0.
OUT_OF_RANGE_IDS = (-1, np.iinfo(np.int32).max)
# Out-of-range and id-0 requests take the same path after the id mapping,
# so any difference beyond float noise means the mapping is missing.
OUT_OF_RANGE_ATOL = 1e-6


def predict_both(runner, model, batches):
    """Outputs of the Keras model and the LiteRT file on the same batches.

    Each is fed by name what it declares (`select_inputs` for Keras, the
    signature's inputs for LiteRT); other columns are ignored.

    Args:
        runner: `LiteRTRunner` on the file.
        model: the user's Keras model.
        batches: list of `(features, labels or None)`.

    Returns:
        `(keras_out, lite_out, labels)`; `labels` is None without labels.

    Raises:
        ValueError: If a batch lacks an input the model declares.
    """
    output_name = runner.output_names[0]
    keras_out, lite_out, labels = [], [], []
    for features, batch_labels in batches:
        inputs = model_utils.select_inputs(model, features, "model")
        missing = sorted(set(runner.input_names) - set(features))
        if missing:
            raise ValueError(
                f"`validation_data` lacks model inputs {missing}. "
                f"Received: features={sorted(features)}"
            )
        keras_out.append(
            np.asarray(model(inputs, training=False), dtype=np.float32)
        )
        lite_out.append(
            runner({name: features[name] for name in runner.input_names})[
                output_name
            ]
        )
        if batch_labels is not None:
            labels.append(np.asarray(batch_labels).reshape(-1))
    labels = np.concatenate(labels) if labels else None
    return np.concatenate(keras_out), np.concatenate(lite_out), labels


def check_unknown_ids(runner, id_inputs, mapped):
    """Raises unless out-of-range ids score like id 0 in every input.

    Each input is tried alone (the others at id 0) with -1 and
    2**31 - 1, so a failure names the input.

    Args:
        runner: `LiteRTRunner` on the file.
        id_inputs: list of input names to check.
        mapped: dict of the inputs the exporter mapped, for the message.

    Raises:
        ValueError: If an input scores differently, or LiteRT fails.
    """
    output_name = runner.output_names[0]
    zeros = id_zero_features(runner, batch_size=1)
    reference = runner(zeros)[output_name]
    for name in id_inputs:
        for bad_id in OUT_OF_RANGE_IDS:
            features = dict(zeros, **{name: np.full_like(zeros[name],
                                                         bad_id)})
            try:
                scores = runner(features)[output_name]
            except RuntimeError as e:
                raise ValueError(
                    _unknown_id_message(name, bad_id, str(e), mapped)
                ) from e
            if not np.allclose(scores, reference, atol=OUT_OF_RANGE_ATOL,
                               equal_nan=True):
                detail = f"scores {scores.ravel()} != {reference.ravel()}"
                raise ValueError(
                    _unknown_id_message(name, bad_id, detail, mapped)
                )


def _unknown_id_message(name, bad_id, detail, mapped):
    if name in mapped:
        cause = "even after the exporter mapped its ids"
    else:
        cause = (
            "its ids reach an embedding through other operations than "
            "reshapes, so the exporter could not map them"
        )
    return (
        f"Expected out-of-range ids in input '{name}' to score like id 0 "
        f"({cause}). Map them yourself before the lookup (ids outside "
        "[0, vocabulary) to 0, e.g. with keras.ops.where), or, if the "
        "input is not an id, leave it out of `id_inputs=[...]`. Received: "
        f"{name}={bad_id} gives {detail}"
    )


def id_zero_features(runner, batch_size):
    """A batch with every input at 0, in the signature's shapes."""
    features = {}
    for name, details in runner.input_details.items():
        shape = [batch_size] + [int(d) for d in details["shape"][1:]]
        features[name] = np.zeros(shape, dtype=details["dtype"])
    return features


def check_metric_drop(measured, max_metric_drop, allow_metric_drop,
                      quantization):
    """Raises `MetricDropError` if the metric dropped too far.

    ```
    drop = auc_keras - auc_litert      (metric="auc")
    drop = rmse_litert - rmse_keras    (metric="rmse")
    ```
    """
    metric = measured["metric"]
    if metric is None:
        return
    before, after = measured["metric_before"], measured["metric_after"]
    drop = before - after if metric == "auc" else after - before
    if drop > max_metric_drop and not allow_metric_drop:
        raise MetricDropError(
            metric, before, after, drop, max_metric_drop, quantization
        )
