"""Scores requests with a tfkd `.tflite` model, as an app would.

Imports only NumPy, the standard library (argparse, json, hashlib) and
`ai_edge_litert`: no TensorFlow, no tfkd. The input handling mirrors
`tfkd/export/litert_runner.py`; keep the two in step.

Usage:

```
python export/run_tflite.py export/student.tflite --requests requests.json
```

`requests.json` holds a list of requests, `[{"user_id": 3, "item_id": 7,
"genres": [4, 9], ...}, ...]`, or one dict of columns, `{"user_id": [3, 5],
...}`. The sidecar beside the model (`student.json`) gives the input names,
dtypes and shapes and what the output means. The script prints JSON:
logits and probabilities for a logit model, probabilities or ratings
otherwise.
"""

import argparse
import hashlib
import json

import numpy as np
from ai_edge_litert.interpreter import Interpreter

SIGNATURE_KEY = "serving_default"
PADDING_ID = 0
NUMPY_DTYPES = {"int32": np.int32, "int64": np.int64, "float32": np.float32}


def sidecar_path(model_path):
    """Returns `a/b.json` for `a/b.tflite`, where tfkd writes the sidecar."""
    stem = model_path[: -len(".tflite")]
    return (stem if model_path.endswith(".tflite") else model_path) + ".json"


def load_sidecar(model_path, path=None, verify_sha256=True):
    """Reads the sidecar and checks that it describes this exact file.

    Args:
        model_path: str. The `.tflite` file.
        path: str or None. The sidecar; defaults to the one beside the
            model.
        verify_sha256: bool. Compare the file's SHA-256 with the sidecar's.

    Returns:
        The sidecar as a dict.

    Raises:
        ValueError: If the SHA-256 does not match.
    """
    with open(path or sidecar_path(model_path)) as f:
        sidecar = json.load(f)
    if verify_sha256:
        with open(model_path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != sidecar["sha256"]:
            raise ValueError(
                "The model file does not match its sidecar (a partial copy "
                f"or a sidecar from another export). Expected: sha256="
                f"{sidecar['sha256']}. Received: sha256={digest}"
            )
    return sidecar


def to_columns(requests):
    """Turns a list of request dicts into a dict of columns.

    Args:
        requests: list of dicts (one per request) or a dict of lists.

    Returns:
        A dict of feature name to list, one entry per request.

    Raises:
        TypeError: If `requests` is neither form.
        ValueError: If requests name different features.
    """
    if isinstance(requests, dict):
        return requests
    if not isinstance(requests, list) or not all(
        isinstance(r, dict) for r in requests
    ):
        raise TypeError(
            "Expected a list of {feature: value} dicts or a dict of lists. "
            f"Received: {type(requests).__name__}"
        )
    if not requests:
        raise ValueError("Expected at least one request. Received: []")
    names = sorted(requests[0])
    for i, request in enumerate(requests):
        if sorted(request) != names:
            raise ValueError(
                f"Expected every request to have the features {names}. "
                f"Received: request {i} with {sorted(request)}"
            )
    return {name: [r[name] for r in requests] for name in names}


def prepare(columns, inputs):
    """Builds int32 arrays, batch first, for the signature's inputs.

    Shorter list features (genres) are right-padded with id 0; ids beyond
    int32 are clipped, which keeps them out of range (scored as id 0).

    Args:
        columns: dict of feature name to list of values.
        inputs: the sidecar's `inputs` list.

    Returns:
        A dict of input name to NumPy array.

    Raises:
        ValueError: If features are missing or unknown, values are not
            integer ids, or a list feature is too long.
    """
    expected = sorted(entry["name"] for entry in inputs)
    if sorted(columns) != expected:
        raise ValueError(
            f"Expected exactly the features {expected}. "
            f"Received: {sorted(columns)}"
        )
    return {entry["name"]: _column(columns[entry["name"]], entry)
            for entry in inputs}


def _column(values, entry):
    name, shape = entry["name"], entry["shape"]
    dtype = NUMPY_DTYPES[entry["dtype"]]
    if not isinstance(values, (list, tuple, np.ndarray)):
        values = [values]
    if len(shape) == 2:
        values = [_pad(name, v, shape[1]) for v in values]
    array = np.asarray(values)
    if np.issubdtype(dtype, np.integer):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"Expected integer ids for '{name}'. "
                f"Received: dtype={array.dtype}"
            )
        limits = np.iinfo(dtype)
        array = np.clip(array, limits.min, limits.max)
    array = array.astype(dtype)
    if array.ndim != len(shape):
        raise ValueError(
            f"Expected '{name}' with shape {shape} (batch first). "
            f"Received: shape={array.shape}"
        )
    return array


def _pad(name, value, length):
    value = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(value) > length:
        raise ValueError(
            f"Expected at most {length} values for '{name}'. "
            f"Received: {len(value)}"
        )
    return value + [PADDING_ID] * (length - len(value))


def score(model_path, requests, sidecar=None):
    """Returns the model's raw output for each request.

    Args:
        model_path: str. The `.tflite` file.
        requests: list of request dicts or a dict of columns.
        sidecar: dict or None. Defaults to the sidecar beside the model.

    Returns:
        A float32 array of shape `(num_requests,)`: logits for a logit
        model, probabilities or ratings otherwise (see the sidecar).
    """
    sidecar = sidecar or load_sidecar(str(model_path))
    interpreter = Interpreter(model_path=str(model_path), num_threads=1)
    runner = interpreter.get_signature_runner(sidecar["signature_key"])
    features = prepare(to_columns(requests), sidecar["inputs"])
    output_name = sidecar["outputs"][0]["name"]
    return runner(**features)[output_name].reshape(-1)


def to_json(scores, kind):
    """The printed result: raw outputs under a name that says what they are.

    Args:
        scores: array of raw outputs.
        kind: the sidecar's output `kind`.

    Returns:
        A JSON-serializable dict.
    """
    values = scores.astype(np.float64)
    if kind == "logit":
        return {
            "logits": values.tolist(),
            "probabilities": (1.0 / (1.0 + np.exp(-values))).tolist(),
        }
    if kind == "probability":
        return {"probabilities": values.tolist()}
    return {"ratings": values.tolist()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="path to the .tflite file")
    parser.add_argument(
        "--requests", required=True, help="JSON file of requests"
    )
    parser.add_argument(
        "--sidecar", help="sidecar JSON (default: beside the model)"
    )
    args = parser.parse_args(argv)
    sidecar = load_sidecar(args.model, args.sidecar)
    with open(args.requests) as f:
        requests = json.load(f)
    scores = score(args.model, requests, sidecar)
    print(json.dumps(to_json(scores, sidecar["outputs"][0]["kind"])))


if __name__ == "__main__":
    main()
