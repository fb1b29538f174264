"""Scores requests with a tfkd `.tflite` model, as an app would.

Imports only NumPy, the standard library (argparse, json, hashlib),
`raw_values.py` beside it and `ai_edge_litert` (or, where only that is
installed, `tflite_runtime` 2.14, the runtime of the TF Lite 2.14 app
libraries): no TensorFlow, no tfkd. The input handling mirrors
`tfkd/export/litert_runner.py`; keep the two in step.

Usage:

```
python export/run_tflite.py export/student.tflite --requests requests.json
```

`requests.json` holds a list of requests, `[{"user_id": 3, "item_id": 7,
"genres": [4, 9], ...}, ...]`, or one dict of columns, `{"user_id": [3, 5],
...}`. The sidecar beside the model (`student.json`) gives the task, the
input names, dtypes and shapes and what each output means. A feature with
a vocabulary or hash buckets in the sidecar (`feature_spec.features[i]`)
takes the raw values the app has (`"u00042"`, an hour from 0), mapped to
ids as `raw_values.py` says: an unknown value, or null, is id 0.
The script prints JSON: for a ranking model, logits and probabilities for
a logit output, probabilities or ratings otherwise; for a retrieval model (the
requests then hold user features only), `item_ids` and `scores`, the top
K per request, best first. A problem (a missing file, requests that are
not JSON, a model its sidecar does not describe) is one line on stderr and
exit status 1; `TFKD_DEBUG=1` shows the traceback instead.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

# The raw-value rules live beside this file, for an app to port.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_values import canonical  # noqa: E402,F401
from raw_values import lookup  # noqa: E402
from raw_values import mappings  # noqa: E402

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # An app's pinned runtime: tflite-runtime 2.14.
    from tflite_runtime.interpreter import Interpreter

SIGNATURE_KEY = "serving_default"
DEBUG_VARIABLE = "TFKD_DEBUG"
SIDECAR_KEYS = ("sha256", "signature_key", "inputs", "outputs")
# The sidecar schemas this runner reads (`format_version`); 1 had no
# retrieval output kinds and is read as ranking.
FORMAT_VERSIONS = (1, 2)
TASKS = ("ranking", "retrieval")
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
        FileNotFoundError: If the model or the sidecar is missing.
        ValueError: If the sidecar is not a tfkd sidecar or its SHA-256
            does not match.
    """
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No model file at {model_path}")
    path = path or sidecar_path(model_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No sidecar at {path}: tfkd writes it beside the .tflite "
            "file; copy it along, or pass --sidecar PATH."
        )
    sidecar = _read_json(path, "the sidecar")
    missing = [k for k in SIDECAR_KEYS
               if not isinstance(sidecar, dict) or k not in sidecar]
    if missing:
        raise ValueError(
            f"{path} is not a tfkd sidecar: expected the keys "
            f"{list(SIDECAR_KEYS)}. Received: missing {missing}"
        )
    version = sidecar.get("format_version")
    if version not in FORMAT_VERSIONS:
        raise ValueError(
            f"{path} has sidecar format_version {version!r}; this runner "
            f"reads {list(FORMAT_VERSIONS)}. Use the run_tflite.py of the "
            "tfkd version that wrote the model."
        )
    if sidecar.get("task", "ranking") not in TASKS:
        raise ValueError(
            f"{path} has task {sidecar.get('task')!r}; expected one of "
            f"{list(TASKS)}."
        )
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


def _read_json(path, what):
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as e:
            raise ValueError(f"{path} ({what}) is not valid JSON: {e}") from e


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


def prepare(columns, inputs, raw=None):
    """Builds int32 arrays, batch first, for the signature's inputs.

    Shorter list features (genres) are right-padded with id 0; ids beyond
    int32 are clipped, which keeps them out of range (scored as id 0). A
    feature with a vocabulary or hash buckets is mapped from raw values
    first.

    Args:
        columns: dict of feature name to list of values.
        inputs: the sidecar's `inputs` list.
        raw: dict or None. From `raw_values.mappings(sidecar)`.

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
    raw = raw or {}
    return {
        entry["name"]: _column(
            lookup(columns[entry["name"]], *raw[entry["name"]])
            if entry["name"] in raw else columns[entry["name"]],
            entry,
        )
        for entry in inputs
    }


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
                f"Expected integer ids for '{name}' (its sidecar feature "
                f"has no vocabulary or hash buckets). Received: "
                f"dtype={array.dtype}"
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


def run(model_path, requests, sidecar=None):
    """Runs the model on the requests; returns every output by its kind.

    Args:
        model_path: str. The `.tflite` file.
        requests: list of request dicts or a dict of columns.
        sidecar: dict or None. Defaults to the sidecar beside the model.

    Returns:
        A dict of output kind (the sidecar's `outputs[i].kind`: `logit`,
        `probability` or `rating` for ranking; `item_ids` and `scores`
        for retrieval) to a NumPy array with one row per request.
    """
    sidecar = sidecar or load_sidecar(str(model_path))
    interpreter = Interpreter(model_path=str(model_path), num_threads=1)
    runner = interpreter.get_signature_runner(sidecar["signature_key"])
    features = prepare(to_columns(requests), sidecar["inputs"],
                       mappings(sidecar))
    outputs = runner(**features)
    return {
        entry["kind"]: outputs[entry["name"]] for entry in sidecar["outputs"]
    }


def score(model_path, requests, sidecar=None):
    """Returns a ranking model's one output for each request.

    Args:
        model_path: str. The `.tflite` file.
        requests: list of request dicts or a dict of columns.
        sidecar: dict or None. Defaults to the sidecar beside the model.

    Returns:
        A float32 array of shape `(num_requests,)`: logits for a logit
        model, probabilities or ratings otherwise (see the sidecar).

    Raises:
        ValueError: For a retrieval model (use `run`).
    """
    sidecar = sidecar or load_sidecar(str(model_path))
    if sidecar.get("task", "ranking") != "ranking":
        raise ValueError(
            "score() is for ranking models; this sidecar has task "
            f"{sidecar['task']!r}: use run() for its item ids and scores."
        )
    (values,) = run(model_path, requests, sidecar).values()
    return values.reshape(-1)


def to_json(outputs):
    """The printed result: outputs under names that say what they are.

    Args:
        outputs: dict of output kind to array, from `run`.

    Returns:
        A JSON-serializable dict.
    """
    if "item_ids" in outputs:
        return {
            "item_ids": outputs["item_ids"].astype(np.int64).tolist(),
            "scores": outputs["scores"].astype(np.float64).tolist(),
        }
    (kind, values), = outputs.items()
    values = values.reshape(-1).astype(np.float64)
    if kind == "logit":
        return {
            "logits": values.tolist(),
            "probabilities": (1.0 / (1.0 + np.exp(-values))).tolist(),
        }
    if kind == "probability":
        return {"probabilities": values.tolist()}
    return {"ratings": values.tolist()}


def main(argv=None):
    """Scores the requests and prints JSON.

    Args:
        argv: list of str or None. Defaults to `sys.argv[1:]`.

    Returns:
        int exit status: 0, or 1 after a one-line error on stderr.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="path to the .tflite file")
    parser.add_argument(
        "--requests", required=True, help="JSON file of requests"
    )
    parser.add_argument(
        "--sidecar", help="sidecar JSON (default: beside the model)"
    )
    args = parser.parse_args(argv)
    try:
        sidecar = load_sidecar(args.model, args.sidecar)
        requests = _read_json(args.requests, "the requests")
        outputs = run(args.model, requests, sidecar)
    except Exception as e:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        message = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 1
    print(json.dumps(to_json(outputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
