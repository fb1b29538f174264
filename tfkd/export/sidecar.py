"""The JSON sidecar that tells an app what goes in and what comes out."""

import datetime
import hashlib
import importlib.metadata
import os
import sys

SIDECAR_FORMAT_VERSION = 1
SIDECAR_SUFFIX = ".json"

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
SOFTMAX_MEANING = (
    "probabilities over the last axis, each in [0, 1] and summing to 1 (the "
    "model applies the softmax: use them as is)"
)
UNKNOWN_ID_SCORE = "as id 0"


def sidecar_path(model_path):
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


def output_entries(runner, output_kind, activation=None):
    """The sidecar's `outputs`: each tensor with its kind and meaning."""
    meaning = OUTPUT_MEANINGS[output_kind]
    if output_kind == "probability" and activation == "softmax":
        meaning = SOFTMAX_MEANING
    extra = {"activation": activation} if output_kind == "probability" else {}
    return [
        dict(entry, kind=output_kind, meaning=meaning, **extra)
        for entry in tensor_entries(runner.output_details)
    ]


def build_sidecar(
    runner,
    signature_key,
    output_kind,
    feature_spec,
    quantization,
    metrics,
    model_bytes,
    sha256,
    activation=None,
    unknown_ids=None,
):
    """Builds the sidecar dict from the converted model's signature.

    Inputs and outputs are read from the LiteRT signature itself (not from
    the Keras model), so the sidecar describes exactly the file an app
    loads.

    Args:
        runner: `LiteRTRunner` on the converted file.
        signature_key: str. The signature the app must call.
        output_kind: str. `"logit"`, `"probability"` or `"rating"`.
        feature_spec: dict or None. The feature spec as a plain dict.
        quantization: str. The quantization mode.
        metrics: dict. What was measured at export.
        model_bytes: int. Size of the `.tflite` file.
        sha256: str. Hex digest of the `.tflite` file.
        activation: str or None. `"sigmoid"` or `"softmax"` for a
            probability output. Defaults to `None`.
        unknown_ids: dict or None. From `unknown_ids_entry`. Defaults to
            `None`.

    Returns:
        A JSON-serializable dict.
    """
    return {
        "format_version": SIDECAR_FORMAT_VERSION,
        "tfkd_version": tfkd_version(),
        "task": "ranking",
        "signature_key": signature_key,
        "inputs": tensor_entries(runner.input_details),
        "outputs": output_entries(runner, output_kind, activation),
        "unknown_ids": unknown_ids,
        "feature_spec": feature_spec,
        "quantization": quantization,
        "metrics": metrics,
        "bytes": model_bytes,
        "sha256": sha256,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


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
