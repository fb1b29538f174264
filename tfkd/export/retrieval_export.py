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

import dataclasses
import datetime
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfkd.export import atomic_write
from tfkd.export.converter_utils import SIGNATURE_KEY
from tfkd.export.converter_utils import strip_tensor_names
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.sidecar import SIDECAR_FORMAT_VERSION
from tfkd.export.sidecar import sha256_of_file
from tfkd.export.sidecar import tensor_entries
from tfkd.export.sidecar import tfkd_version
from tfkd.models import embedding_utils

IDS_OUTPUT = "top_prediction_ids"
SCORES_OUTPUT = "top_prediction_scores"
QUANTIZATION_MODES = (None, "dynamic", "float16")
# Recall of the Keras top-K in the LiteRT top-K required by default. Float32
# differs from Keras only by summation order; the quantized modes perturb
# the scores, so near-ties at rank K swap (measured on the synthetic
# two-tower, 300 items, K=10: float16 0.9945, dynamic 0.9415).
DEFAULT_MIN_RECALL = {None: 0.99, "float16": 0.95, "dynamic": 0.8}
# Keras scores this close to the K-th best are ties: either item is a
# correct K-th answer.
TIE_ATOL = 1e-5
DEFAULT_NUM_CHECK_USERS = 256


@dataclasses.dataclass(frozen=True)
class RetrievalExportReport:
    """The result of one `to_tflite_retrieval` call.

    Args:
        path: str. The `.tflite` file written.
        bytes: int. Its size.
        quantization: str. `"none"`, `"dynamic"` or `"float16"`.
        k: int. Items returned per user.
        num_candidates: int. Items baked into the model.
        num_users_checked: int. Users scored by both Keras and LiteRT.
        recall_at_k: float. Mean over users of |Keras top-K ∩ LiteRT
            top-K| / K, ties at rank K counted as found.
        min_recall: float. The recall that was required.
        max_score_abs_diff: float. Largest |LiteRT - Keras| top-K score,
            rank by rank.
        latency_us_p50: float. Median batch-1 invoke time (one thread).
        sidecar_path: str. The JSON sidecar written beside the model.

    Example:

    ```python
    report = to_tflite_retrieval(model, data.items, "export/ret.tflite")
    print(report.to_dict())
    ```
    """

    path: str
    bytes: int
    quantization: str
    k: int
    num_candidates: int
    num_users_checked: int
    recall_at_k: float
    min_recall: float
    max_score_abs_diff: float
    latency_us_p50: float
    sidecar_path: str

    def to_dict(self):
        """Returns the report as a JSON-serializable dict."""
        return dataclasses.asdict(self)


class RetrievalMismatchError(ValueError):
    """LiteRT's top-K disagrees with the Keras model's; nothing written.

    Args:
        recall: float. The measured recall at K.
        min_recall: float. The required recall.
        quantization: str. The quantization mode tried.
    """

    def __init__(self, recall, min_recall, quantization):
        self.recall = recall
        self.min_recall = min_recall
        self.quantization = quantization
        super().__init__(
            f"Expected the LiteRT top-K to recall >= {min_recall} of the "
            f"Keras top-K. Received: recall_at_k={recall:.4f} "
            f"(quantization={quantization!r}). Nothing was written. Pass a "
            "lower `min_recall` to export anyway, or use less quantization."
        )


def to_tflite_retrieval(
    model,
    candidates,
    path,
    k=10,
    quantization=None,
    users=None,
    min_recall=None,
    item_id_feature="item_id",
    feature_spec=None,
    latency_runs=200,
):
    """Exports a two-tower model as one on-device top-K retrieval model.

    ```
    V      = item_model(candidates)                 # constant (M, d)
    scores = user_model(user_features) @ V^T        # (batch, M)
    top_prediction_scores, j = top_k(scores, k)     # (batch, k)
    top_prediction_ids = candidates[item_id_feature][j]
    ```

    The file is written to a temporary path, loaded in the LiteRT
    interpreter and checked against the Keras towers on `users`: the
    recall of the Keras top-K in the LiteRT top-K must reach `min_recall`.
    Only then are the model and its JSON sidecar moved into place with
    `os.replace`. The candidates are frozen into the file: new items need a
    new export.

    Args:
        model: a `tfkd.models.TwoTowerModel`, or any object with
            `user_model` and `item_model` Functional `keras.Model`s whose
            outputs are `(batch, d)` embeddings.
        candidates: pandas DataFrame (e.g. `data.items`) or dict of arrays
            with the item tower's inputs, one row per candidate.
        path: str or os.PathLike. Destination ending in `.tflite`.
        k: int. Items returned per user, 1 <= k <= candidates. Defaults
            to `10`.
        quantization: None (float32), `"dynamic"` (int8 weights) or
            `"float16"`. Defaults to `None`.
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

    Returns:
        A `RetrievalExportReport`.

    Raises:
        TypeError: If `model` lacks the towers or an argument has the
            wrong type.
        ValueError: If `k`, `quantization` or `min_recall` is out of range,
            or a tower input is missing.
        RetrievalMismatchError: If the recall is below `min_recall`.

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
    if min_recall is None:
        min_recall = DEFAULT_MIN_RECALL[quantization]
    items = _tower_features(candidates, item_model, "candidates")
    if item_id_feature not in items:
        raise ValueError(
            f"Expected `candidates` to have the column {item_id_feature!r} "
            f"(`item_id_feature`). Received: columns={sorted(items)}"
        )
    item_ids = np.asarray(items[item_id_feature]).astype(np.int32)
    num_candidates = item_ids.shape[0]
    if k > num_candidates:
        raise ValueError(
            f"Expected `k` <= the number of candidates ({num_candidates}). "
            f"Received: k={k}"
        )
    item_embeddings = np.asarray(
        item_model(_inputs_of(items, item_model), training=False),
        dtype=np.float32,
    )
    if users is None:
        check_users = _random_users(user_model, DEFAULT_NUM_CHECK_USERS)
    else:
        check_users = _tower_features(users, user_model, "users")
    model_bytes = _convert(
        user_model, item_embeddings, item_ids, k, quantization
    )
    quantization_name = quantization or "none"
    measured = {}

    def verify(temp_path):
        runner = LiteRTRunner(temp_path)
        measured.update(
            _verify(runner, user_model, item_embeddings, item_ids, k,
                    check_users, latency_runs)
        )
        if measured["recall_at_k"] < min_recall:
            raise RetrievalMismatchError(
                measured["recall_at_k"], min_recall, quantization_name
            )
        return _sidecar(
            runner,
            k=k,
            num_candidates=num_candidates,
            quantization=quantization_name,
            metrics=dict(measured, min_recall=min_recall),
            feature_spec=_spec_dict(feature_spec),
            model_bytes=len(model_bytes),
            sha256=sha256_of_file(temp_path),
        )

    _, side_path = atomic_write.write_verified(path, model_bytes, verify)
    return RetrievalExportReport(
        path=path,
        bytes=len(model_bytes),
        quantization=quantization_name,
        k=k,
        num_candidates=num_candidates,
        num_users_checked=measured["num_users_checked"],
        recall_at_k=measured["recall_at_k"],
        min_recall=float(min_recall),
        max_score_abs_diff=measured["max_score_abs_diff"],
        latency_us_p50=measured["latency_us_p50"],
        sidecar_path=side_path,
    )


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
    for name, value in (("k", k), ("latency_runs", latency_runs)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"Expected `{name}` to be an int. Received: {name}={value!r}"
            )
        if value < 1:
            raise ValueError(
                f"Expected `{name}` >= 1. Received: {name}={value}"
            )
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


def _tower_features(table, tower, argument):
    """Returns `{input name: int32 array}` for a tower from a frame/dict."""
    if hasattr(table, "columns"):
        columns = {name: table[name].to_numpy() for name in table.columns}
    elif isinstance(table, dict):
        columns = dict(table)
    else:
        raise TypeError(
            f"Expected `{argument}` to be a pandas DataFrame or a dict of "
            f"arrays. Received: {argument} of type {type(table).__name__}"
        )
    names = [t.name for t in tower.inputs]
    missing = sorted(set(names) - set(columns))
    if missing:
        raise ValueError(
            f"Expected `{argument}` to hold the {tower.name} inputs "
            f"{sorted(names)}. Received: missing={missing}"
        )
    features = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype == object:
            # A list feature's cells (genres) are arrays in a frame.
            values = np.stack(values)
        features[name] = values.astype(np.int32)
    return features


def _inputs_of(features, tower):
    return {t.name: features[t.name] for t in tower.inputs}


def _random_users(user_model, count):
    rng = np.random.default_rng(0)
    # Without a known vocabulary, id 0 (unknown) is the only valid id.
    vocabularies = embedding_utils.vocabulary_sizes(user_model)
    users = {}
    for tensor in user_model.inputs:
        vocabulary = vocabularies.get(tensor.name, 1)
        shape = (count,) + tuple(tensor.shape[1:])
        users[tensor.name] = rng.integers(0, vocabulary, shape, np.int32)
    return users


def _convert(user_model, item_embeddings, item_ids, k, quantization):
    embeddings = tf.constant(item_embeddings)
    ids = tf.constant(item_ids)
    specs = {
        t.name: tf.TensorSpec(
            (None,) + tuple(t.shape[1:]), tf.int32, name=t.name
        )
        for t in user_model.inputs
    }

    def serve(features):
        users = user_model(features, training=False)
        scores = tf.matmul(users, embeddings, transpose_b=True)
        top_scores, top_rows = tf.math.top_k(scores, k=k)
        return {
            IDS_OUTPUT: tf.gather(ids, top_rows),
            SCORES_OUTPUT: top_scores,
        }

    # An ExportArchive (not a bare tf.Module) so the Keras variables are
    # frozen into constants; a tf.Module kept them as VAR_HANDLE ops that
    # LiteRT leaves uninitialised (NaN scores).
    archive = keras.export.ExportArchive()
    archive.track(user_model)
    archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=[specs])
    with tempfile.TemporaryDirectory(prefix="tfkd_retrieval_") as saved_dir:
        archive.write_out(saved_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_dir, signature_keys=[SIGNATURE_KEY]
        )
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS
        ]
        if quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return strip_tensor_names(converter.convert())


def _verify(runner, user_model, item_embeddings, item_ids, k, users,
            latency_runs):
    expected = {IDS_OUTPUT, SCORES_OUTPUT}
    if set(runner.output_names) != expected:
        raise ValueError(
            f"Expected outputs {sorted(expected)}. "
            f"Received: outputs={runner.output_names}"
        )
    user_inputs = _inputs_of(users, user_model)
    user_embeddings = np.asarray(
        user_model(user_inputs, training=False), dtype=np.float32
    )
    keras_scores = user_embeddings @ item_embeddings.T
    lite = runner(user_inputs)
    recall = recall_at_k(
        keras_scores, item_ids, lite[IDS_OUTPUT], k, tie_atol=TIE_ATOL
    )
    keras_top = -np.sort(-keras_scores, axis=1)[:, :k]
    first = {name: values[:1] for name, values in user_inputs.items()}
    return {
        "num_users_checked": int(keras_scores.shape[0]),
        "recall_at_k": recall,
        "max_score_abs_diff": float(
            np.max(np.abs(keras_top - lite[SCORES_OUTPUT]))
        ),
        "latency_us_p50": runner.latency_us_p50(first, latency_runs),
    }


def recall_at_k(reference_scores, item_ids, predicted_ids, k, tie_atol=0.0):
    """Mean share of the reference top-K found in the predicted top-K.

    ```
    recall = mean_u |top_k(reference_u) ∩ predicted_u| / k
    ```

    A reference item whose score is within `tie_atol` of the K-th best
    reference score counts as found if any item tied with it was
    predicted: which of tied items makes the cut is arbitrary.

    Args:
        reference_scores: array `(users, candidates)`. The Keras scores.
        item_ids: array `(candidates,)`. The id of each candidate column.
        predicted_ids: array `(users, >= k)`. LiteRT's top ids, best first.
        k: int. Cut-off.
        tie_atol: float. Score tolerance that makes two items a tie.
            Defaults to `0.0`.

    Returns:
        The mean recall as a float in [0, 1].

    Example:

    >>> recall_at_k(np.array([[3.0, 2.0, 1.0]]), np.array([7, 8, 9]),
    ...             np.array([[7, 9]]), k=2)
    0.5
    """
    reference_scores = np.asarray(reference_scores, dtype=np.float64)
    item_ids = np.asarray(item_ids)
    predicted_ids = np.asarray(predicted_ids)[:, :k]
    order = np.argsort(-reference_scores, axis=1, kind="stable")[:, :k]
    recalls = []
    for row, predicted in enumerate(predicted_ids):
        scores = reference_scores[row]
        kth = scores[order[row, -1]]
        predicted = set(predicted.tolist())
        tied = set(item_ids[np.abs(scores - kth) <= tie_atol].tolist())
        found = 0
        for column in order[row]:
            item = item_ids[column]
            if item in predicted:
                found += 1
            elif abs(scores[column] - kth) <= tie_atol and tied & predicted:
                found += 1
        recalls.append(found / k)
    return float(np.mean(recalls))


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


def _sidecar(runner, k, num_candidates, quantization, metrics, feature_spec,
             model_bytes, sha256):
    meanings = {
        IDS_OUTPUT: (
            f"the {k} best item ids for each user, best first (ids as in "
            "the candidates' item_id column)"
        ),
        SCORES_OUTPUT: (
            "dot product of the user and item embeddings (cosine "
            "similarity for tfkd towers), same order as the ids"
        ),
    }
    return {
        "format_version": SIDECAR_FORMAT_VERSION,
        "tfkd_version": tfkd_version(),
        "task": "retrieval",
        "signature_key": SIGNATURE_KEY,
        "inputs": tensor_entries(runner.input_details),
        "outputs": [
            dict(entry, meaning=meanings[entry["name"]])
            for entry in tensor_entries(runner.output_details)
        ],
        "k": k,
        "num_candidates": num_candidates,
        "feature_spec": feature_spec,
        "quantization": quantization,
        "metrics": metrics,
        "bytes": model_bytes,
        "sha256": sha256,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
