"""The JSON sidecar that tells an app what goes in and what comes out."""

import datetime
import hashlib
import importlib.metadata
import os
import sys

# 2: one schema for every export (`task`, `compression`, an output `kind`
# on every output, `k` / `num_candidates` for retrieval).
SIDECAR_FORMAT_VERSION = 2
SIDECAR_SUFFIX = ".json"
# The signature every tfkd export has and an app calls.
SIGNATURE_KEY = "serving_default"
TASKS = ("ranking", "retrieval")
# `to_tflite(quantization=...)`'s modes; the sidecar records None as "none".
QUANTIZATION_MODES = (None, "dynamic", "float16", "int8")
COMPRESSIONS = (None, "qat", "pruning")

OUTPUT_MEANINGS = {
    "logit": (
        "logit: apply sigmoid, probability = 1 / (1 + exp(-logit)), to get "
        "the probability of a positive interaction"
    ),
    "probability": (
        "probability of a positive interaction, in [0, 1] (the model "
        "applies the sigmoid: use it as is)"
    ),
    "rating": "predicted rating, on the scale of the training labels",
}
# What a ranking model's one output can be; `to_tflite(output_kind=...)`.
OUTPUT_KINDS = tuple(OUTPUT_MEANINGS)
SOFTMAX_MEANING = (
    "probabilities over the last axis, each in [0, 1] and summing to 1 (the "
    "model applies the softmax: use them as is)"
)
# A retrieval export's two outputs, by tensor name, and their kinds.
RETRIEVAL_OUTPUT_KINDS = {
    "top_prediction_ids": "item_ids",
    "top_prediction_scores": "scores",
}
UNKNOWN_ID_SCORE = "as id 0"


def sidecar_path(model_path: str | os.PathLike) -> str:
    """Returns the sidecar path for a model: `a/b.tflite` -> `a/b.json`.

    Args:
        model_path: str or os.PathLike. Path of the `.tflite` file.

    Returns:
        The sidecar path as a str.
    """
    return os.path.splitext(os.fspath(model_path))[0] + SIDECAR_SUFFIX


def sha256_of_file(path):
    """Returns the hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tfkd_version():
    """Returns `tfkd.__version__`, the installed version, or `0+unknown`."""
    module = sys.modules.get("tfkd")
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        return importlib.metadata.version("tfkd")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def unknown_ids_entry(checked_inputs, mapped_inputs):
    """The sidecar's `unknown_ids`: how out-of-range ids are scored.

    Args:
        checked_inputs: iterable of str. Inputs whose ids -1 and 2**31 - 1
            were checked on LiteRT to score like id 0.
        mapped_inputs: dict of input name to vocabulary size, for the
            inputs whose ids the exporter maps inside the file.

    Returns:
        A JSON-ready dict.

    Example:

    ```python
    unknown_ids_entry(["item_id"], {"item_id": 200})
    # {"scored": "as id 0", "checked_inputs": ["item_id"],
    #  "mapped_inputs": {"item_id": 200}}
    ```
    """
    return {
        "scored": UNKNOWN_ID_SCORE,
        "checked_inputs": sorted(checked_inputs),
        "mapped_inputs": dict(sorted(mapped_inputs.items())),
    }


def ranking_outputs(runner, output_kind, activation=None):
    """The sidecar's `outputs` for a ranking model: kind and meaning.

    Args:
        runner: `LiteRTRunner` on the converted file.
        output_kind: str. One of `OUTPUT_KINDS`.
        activation: str or None. `"sigmoid"` or `"softmax"` for a
            probability output. Defaults to `None`.

    Returns:
        A list of dicts (name, dtype, shape, kind, meaning[, activation]).
    """
    meaning = OUTPUT_MEANINGS[output_kind]
    if output_kind == "probability" and activation == "softmax":
        meaning = SOFTMAX_MEANING
    extra = {"activation": activation} if output_kind == "probability" else {}
    return [
        dict(entry, kind=output_kind, meaning=meaning, **extra)
        for entry in tensor_entries(runner.output_details)
    ]


def retrieval_outputs(runner, k):
    """The sidecar's `outputs` for a top-K retrieval model.

    Args:
        runner: `LiteRTRunner` on the converted file.
        k: int. Items returned per user.

    Returns:
        A list of dicts (name, dtype, shape, kind, meaning).
    """
    meanings = {
        "item_ids": (
            f"the {k} best item ids for each user, best first (ids as in "
            "the candidates' item_id column)"
        ),
        "scores": (
            "dot product of the user and item embeddings (cosine "
            "similarity for tfkd towers), same order as the ids"
        ),
    }
    entries = []
    for entry in tensor_entries(runner.output_details):
        kind = RETRIEVAL_OUTPUT_KINDS[entry["name"]]
        entries.append(dict(entry, kind=kind, meaning=meanings[kind]))
    return entries


def build_sidecar(
    runner,
    task,
    outputs,
    quantization,
    metrics,
    sha256,
    model_bytes,
    feature_spec=None,
    unknown_ids=None,
    compression=None,
    retrieval=None,
    runtime=None,
):
    """Builds the one sidecar schema, for every task and export path.

    Inputs are read from the LiteRT signature itself (not from the Keras
    model), so the sidecar describes exactly the file an app loads.
    `export/README.md` documents the schema with an example of each task.

    Args:
        runner: `LiteRTRunner` on the converted file.
        task: str. `"ranking"` (one score per request) or `"retrieval"`
            (top-K item ids and scores per user).
        outputs: list of dicts from `ranking_outputs` or
            `retrieval_outputs`.
        quantization: str. `"none"`, `"dynamic"`, `"float16"` or `"int8"`.
        metrics: dict. What was measured at export.
        sha256: str. Hex digest of the `.tflite` file.
        model_bytes: int. Size of the `.tflite` file.
        feature_spec: dict or None. The feature spec as a plain dict.
            Defaults to `None`.
        unknown_ids: dict or None. From `unknown_ids_entry`. Defaults to
            `None`.
        compression: None, `"qat"` or `"pruning"`: the fine-tune the
            weights went through before conversion. Defaults to `None`.
        retrieval: dict or None. `{"k": ..., "num_candidates": ...}`,
            required for (and only for) `task="retrieval"`. Defaults to
            `None`.

    Returns:
        A JSON-serializable dict.

    Raises:
        ValueError: If `task` or `compression` is unknown, or `retrieval`
            does not match the task.

    Example:

    ```python
    runner = LiteRTRunner("student.tflite")
    build_sidecar(runner, "ranking", ranking_outputs(runner, "logit"),
                  "int8", {}, sha256_of_file("student.tflite"), 19872)
    ```
    """
    if task not in TASKS:
        raise ValueError(
            f"Expected `task` to be one of {TASKS}. Received: task={task!r}"
        )
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"Expected `compression` to be one of {COMPRESSIONS}. "
            f"Received: compression={compression!r}"
        )
    if (retrieval is not None) != (task == "retrieval"):
        raise ValueError(
            "Expected `retrieval` ({'k', 'num_candidates'}) exactly when "
            f"task='retrieval'. Received: task={task!r}, "
            f"retrieval={retrieval!r}"
        )
    sidecar = {
        "format_version": SIDECAR_FORMAT_VERSION,
        "tfkd_version": tfkd_version(),
        "task": task,
        "signature_key": SIGNATURE_KEY,
        "inputs": tensor_entries(runner.input_details),
        "outputs": outputs,
        "unknown_ids": unknown_ids,
        "feature_spec": feature_spec,
        "quantization": quantization,
        "compression": compression,
        "runtime": runtime,
        "metrics": metrics,
        "bytes": int(model_bytes),
        "sha256": sha256,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    if retrieval is not None:
        sidecar["k"] = int(retrieval["k"])
        sidecar["num_candidates"] = int(retrieval["num_candidates"])
    return sidecar


def tensor_entries(details):
    """Sidecar entries (name, dtype, shape) from LiteRT tensor details.

    Args:
        details: dict of name to LiteRT signature tensor details.

    Returns:
        A list of dicts sorted by name; -1 marks a dynamic dimension (the
        batch), as in LiteRT's own `shape_signature`.
    """
    return [
        {
            "name": name,
            "dtype": details[name]["dtype"].__name__,
            "shape": [int(d) for d in details[name]["shape_signature"]],
        }
        for name in sorted(details)
    ]
