"""`to_tflite_retrieval`: one LiteRT file that returns a user's top-K items.

The layout follows TensorFlow Lite's on-device recommendation reference: the
app sends the user's features and receives `top_prediction_ids` and
`top_prediction_scores`. The item tower runs once at export time over every
candidate and its outputs are baked into the model as a constant, so the
device runs only the user tower, one matrix product and `TOPK_V2` (all
TFLITE_BUILTINS ops; checked with TF 2.21).

`keras_rs.layers.BruteForceRetrieval` computes the same top-K, but keeps
the candidates in a variable set after construction; plain `tf.constant`
captures make the freezing explicit, so they are used instead.
"""

import os
from typing import Any

import keras
import numpy as np
import pandas as pd

from tfkd._internal import model_utils
from tfkd._internal.arguments import validate_positive_int
from tfkd.export import atomic_write
from tfkd.export import id_mapping
from tfkd.export import litert_checks
from tfkd.export import retrieval_inputs
from tfkd.export import retrieval_table
from tfkd.export import runtime_target
from tfkd.export import sidecar
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.retrieval_convert import convert_retrieval
from tfkd.export.retrieval_report import RetrievalExportReport
from tfkd.export.retrieval_report import RetrievalMismatchError
from tfkd.export.retrieval_report import recall_at_k
from tfkd.export.sidecar import RETRIEVAL_OUTPUT_KINDS
from tfkd.export.sidecar import build_sidecar
from tfkd.export.sidecar import retrieval_outputs
from tfkd.export.sidecar import sha256_of_file
from tfkd.export.sidecar import unknown_ids_entry

__all__ = [
    "RetrievalExportReport",
    "RetrievalMismatchError",
    "recall_at_k",
    "to_tflite_retrieval",
]

IDS_OUTPUT, SCORES_OUTPUT = RETRIEVAL_OUTPUT_KINDS
# No full int8: a retrieval export takes no calibration data. The
# `*_table` modes store only the item table narrow (`retrieval_table`).
QUANTIZATION_MODES = tuple(
    mode for mode in sidecar.QUANTIZATION_MODES if mode != "int8"
) + tuple(retrieval_table.TABLE_DTYPES)
# Recall of the Keras top-K in the LiteRT top-K required by default. Float32
# differs from Keras only by summation order; the quantized modes perturb
# the scores, so near-ties at rank K swap (measured on the synthetic
# two-tower, 300 items, K=10: float16 0.9945, dynamic 0.9415; 2K / 100K
# items, d=8 / 16 / 32: int16_table 1.0, int8_table 0.72 / 0.76 / 0.84).
DEFAULT_MIN_RECALL = {
    None: 0.99,
    "float16": 0.95,
    "dynamic": 0.8,
    "int16_table": 0.99,
    "int8_table": 0.6,
}
# Keras scores this close to the K-th best are ties: either item is a
# correct K-th answer.
TIE_ATOL = 1e-5
DEFAULT_NUM_CHECK_USERS = 256


def to_tflite_retrieval(
    model: Any,
    candidates: pd.DataFrame | dict[str, np.ndarray],
    path: str | os.PathLike,
    k: int = 10,
    quantization: str | None = None,
    users: pd.DataFrame | dict[str, np.ndarray] | None = None,
    min_recall: float | None = None,
    item_id_feature: str = "item_id",
    feature_spec: Any = None,
    latency_runs: int = 200,
    min_runtime: str | None = runtime_target.DEFAULT_MIN_RUNTIME,
) -> RetrievalExportReport:
    """Exports a two-tower model as one on-device top-K retrieval model.

    ```
    V      = item_model(candidates)                 # constant (M, d)
    scores = user_model(user_features) @ V^T        # (batch, M)
    top_prediction_scores, j = top_k(scores, k)     # (batch, k)
    top_prediction_ids = candidates[item_id_feature][j]
    ```

    Each tower is fed, by name, the columns it declares; other columns are
    ignored. Candidate rows that repeat an item id with the same features
    are dropped, so no top-K lists an item twice (rows that give one id
    different features are refused). As in `to_tflite`, a user tower's
    plain `keras.layers.Embedding` lookups get the range mapping, so an
    unknown user id scores like id 0.

    The file is written to a temporary path, loaded in the LiteRT
    interpreter and checked against the Keras towers on `users`: the
    recall of the Keras top-K in the LiteRT top-K must reach `min_recall`,
    every top-K must hold distinct ids, and out-of-range ids must give the
    top-K of id 0. Only then are the model and its JSON sidecar moved into
    place with `os.replace`, under the same lock as `to_tflite`. The
    candidates are frozen into the file: new items need a new export.

    Args:
        model: a `tfkd.models.TwoTowerModel`, or any object with
            `user_model` and `item_model` Functional `keras.Model`s whose
            outputs are `(batch, d)` embeddings.
        candidates: pandas DataFrame (e.g. `data.items`) or dict of arrays
            with the item tower's inputs and `item_id_feature`, one row
            per candidate.
        path: str or os.PathLike. Destination ending in `.tflite`.
        k: int. Items returned per user, 1 <= k <= candidates. Defaults
            to `10`.
        quantization: None (float32), `"dynamic"` (int8 weights),
            `"float16"` (every weight), or a mode that stores only the
            item table as integers with one scale and scores in float32:
            `"int16_table"` (2 bytes a weight; the top-K of float32) or
            `"int8_table"` (1 byte; coarse). See
            `tfkd.export.retrieval_table`. Defaults to `None`.
        users: pandas DataFrame, dict of arrays, or None. Users to check
            (the user tower's inputs). None draws
            `DEFAULT_NUM_CHECK_USERS` random ids within each input's
            vocabulary. Defaults to `None`.
        min_recall: float in [0, 1] or None. Required recall at K; None
            uses `DEFAULT_MIN_RECALL[quantization]` (0.99 for float32).
            Defaults to `None`.
        item_id_feature: str. Candidate column returned as the item id.
            Defaults to `"item_id"`.
        feature_spec: a dict, an object with `to_dict()`, or None. Copied
            into the sidecar. Defaults to `None`.
        latency_runs: int >= 1. Timed batch-1 invokes. Defaults to `200`.
        min_runtime: `"2.14"` or None. The oldest LiteRT the file must
            run on, as in `to_tflite`. Defaults to `"2.14"`.

    Returns:
        A `RetrievalExportReport`.

    Raises:
        TypeError: If `model` lacks the towers or an argument has the
            wrong type.
        ValueError: If `k`, `quantization` or `min_recall` is out of range,
            a tower input is missing, an item id has rows with different
            features, or out-of-range user ids do not score like id 0.
        RetrievalMismatchError: If the recall is below `min_recall`.
        RuntimeCompatibilityError: If the file needs an op that
            `min_runtime` lacks.

    Example:

    ```python
    data = tfkd.datasets.synthetic_movielens(task="retrieval")
    model = tfkd.models.two_tower(data.spec)
    model.compile(optimizer="adam")
    model.fit(data.train, epochs=2)
    report = to_tflite_retrieval(
        model, data.items, "export/retrieval.tflite", k=10, users=data.users
    )
    ```
    """
    path = atomic_write.validate_model_path(path)
    user_model, item_model = _towers(model)
    _validate_options(k, quantization, min_recall, latency_runs)
    runtime_target.validate_min_runtime(min_runtime)
    if min_recall is None:
        min_recall = DEFAULT_MIN_RECALL[quantization]
    items = retrieval_inputs.candidate_table(
        candidates, item_model, item_id_feature, k
    )
    export_user_model, mapped = id_mapping.map_unknown_ids(user_model)
    if users is None:
        users = retrieval_inputs.random_users(
            user_model, DEFAULT_NUM_CHECK_USERS, mapped
        )
    else:
        users = retrieval_inputs.tower_features(users, user_model, "users")
    checks = {
        "item_embeddings": _embed(item_model, items, "item tower"),
        "item_ids": items[item_id_feature],
        "k": k,
        "users": users,
        "latency_runs": latency_runs,
        "min_recall": float(min_recall),
        "quantization": quantization or "none",
        "feature_spec": _spec_dict(feature_spec),
        "mapped": mapped,
        "min_runtime": min_runtime,
        "unknown_ids": unknown_ids_entry(
            set(id_mapping.lookup_input_names(user_model)) | set(mapped),
            mapped,
        ),
    }
    model_bytes = convert_retrieval(
        export_user_model, checks["item_embeddings"], checks["item_ids"], k,
        quantization, min_runtime,
    )
    return _write_checked(path, model_bytes, user_model, checks)


def _write_checked(path, model_bytes, user_model, checks):
    """Verifies the file on LiteRT, then writes it and its sidecar."""
    measured = {}
    runtime = runtime_target.check_runtime(
        model_bytes, checks["min_runtime"]
    )

    def verify(temp_path):
        runner = LiteRTRunner(temp_path)
        litert_checks.check_unknown_ids(
            runner, checks["unknown_ids"]["checked_inputs"], checks["mapped"]
        )
        measured.update(_verify(runner, user_model, checks))
        if measured["recall_at_k"] < checks["min_recall"]:
            raise RetrievalMismatchError(
                measured["recall_at_k"], checks["min_recall"],
                checks["quantization"],
            )
        return build_sidecar(
            runner,
            task="retrieval",
            outputs=retrieval_outputs(runner, checks["k"]),
            quantization=checks["quantization"],
            metrics=dict(measured, min_recall=checks["min_recall"]),
            sha256=sha256_of_file(temp_path),
            model_bytes=len(model_bytes),
            feature_spec=checks["feature_spec"],
            unknown_ids=checks["unknown_ids"],
            runtime=runtime,
            retrieval={
                "k": checks["k"],
                "num_candidates": int(checks["item_ids"].shape[0]),
            },
        )

    _, side_path = atomic_write.write_verified(path, model_bytes, verify)
    return RetrievalExportReport(
        path=path,
        bytes=len(model_bytes),
        quantization=checks["quantization"],
        k=checks["k"],
        num_candidates=int(checks["item_ids"].shape[0]),
        num_users_checked=measured["num_users_checked"],
        recall_at_k=measured["recall_at_k"],
        min_recall=checks["min_recall"],
        max_score_abs_diff=measured["max_score_abs_diff"],
        latency_us_p50=measured["latency_us_p50"],
        invoke_us_p50=measured["invoke_us_p50"],
        sidecar_path=side_path,
        min_runtime=runtime["min_runtime"],
    )


def _embed(tower, features, role):
    inputs = model_utils.select_inputs(tower, features, role)
    return np.asarray(tower(inputs, training=False), dtype=np.float32)


def _towers(model):
    towers = []
    for attribute in ("user_model", "item_model"):
        tower = getattr(model, attribute, None)
        if not isinstance(tower, keras.Model) or not tower.inputs:
            raise TypeError(
                f"Expected `model.{attribute}` to be a Functional "
                "keras.Model (e.g. a tfkd.models.TwoTowerModel). Received: "
                f"model of type {type(model).__name__} with {attribute}="
                f"{type(tower).__name__}"
            )
        towers.append(tower)
    return towers


def _validate_options(k, quantization, min_recall, latency_runs):
    validate_positive_int("k", k)
    validate_positive_int("latency_runs", latency_runs)
    if quantization not in QUANTIZATION_MODES:
        raise ValueError(
            f"Expected `quantization` to be one of {QUANTIZATION_MODES} "
            "(full int8 would quantize the scores that top-K ranks). "
            f"Received: quantization={quantization!r}"
        )
    if min_recall is not None and not 0.0 <= min_recall <= 1.0:
        raise ValueError(
            "Expected `min_recall` in [0, 1] or None. "
            f"Received: min_recall={min_recall!r}"
        )


def _verify(runner, user_model, checks):
    item_embeddings, item_ids = checks["item_embeddings"], checks["item_ids"]
    k, users = checks["k"], checks["users"]
    expected = {IDS_OUTPUT, SCORES_OUTPUT}
    if set(runner.output_names) != expected:
        raise ValueError(
            f"Expected outputs {sorted(expected)}. "
            f"Received: outputs={runner.output_names}"
        )
    user_embeddings = _embed(user_model, users, "user tower")
    keras_scores = user_embeddings @ item_embeddings.T
    lite = runner({name: users[name] for name in runner.input_names})
    repeated = [
        row
        for row, ids in enumerate(lite[IDS_OUTPUT])
        if len(set(ids.tolist())) != len(ids)
    ]
    if repeated:
        raise ValueError(
            "Expected distinct item ids in every LiteRT top-K. Received: "
            f"repeats for {len(repeated)} users, first "
            f"{lite[IDS_OUTPUT][repeated[0]].tolist()}"
        )
    recall = recall_at_k(
        keras_scores, item_ids, lite[IDS_OUTPUT], k, tie_atol=TIE_ATOL
    )
    keras_top = -np.sort(-keras_scores, axis=1)[:, :k]
    first = {name: users[name][:1] for name in runner.input_names}
    return {
        "num_users_checked": int(keras_scores.shape[0]),
        "recall_at_k": recall,
        "max_score_abs_diff": float(
            np.max(np.abs(keras_top - lite[SCORES_OUTPUT]))
        ),
        "latency_us_p50": runner.latency_us_p50(first, checks["latency_runs"]),
        "invoke_us_p50": runner.invoke_us_p50(first, checks["latency_runs"]),
    }


def _spec_dict(feature_spec):
    if feature_spec is None:
        return None
    if callable(getattr(feature_spec, "to_dict", None)):
        return feature_spec.to_dict()
    if isinstance(feature_spec, dict):
        return feature_spec
    raise TypeError(
        "Expected `feature_spec` to be a dict, an object with `to_dict()`, "
        f"or None. Received: {type(feature_spec).__name__}"
    )
