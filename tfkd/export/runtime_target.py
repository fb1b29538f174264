"""Which LiteRT runtimes a `.tflite` file runs on, read from the file.

Apps pin their runtime: Android's `org.tensorflow:tensorflow-lite` 2.14
to 2.17, iOS `TensorFlowLiteSwift`, the runtime in Google Play services.
A file the newest LiteRT runs can still fail there, at load (an op or op
version the old runtime never registered) or at the first invoke (a
kernel that does not take the file's tensor type). This module reads the
file's operators, their versions and input types from its flatbuffer and
checks them against what each target runtime registers
(`runtime_ops_<target>.json`, probed from that runtime itself by
`tools/probe_runtime_ops.py`) and against the kernel type gaps measured
on it (`KERNEL_TYPE_GAPS`). It imports no TensorFlow.
"""

import functools
import json
import os

from ai_edge_litert import schema_py_generated as schema

# The oldest runtime tfkd tests its files on; `min_runtime`'s default.
DEFAULT_MIN_RUNTIME = "2.14"
# None: only the LiteRT installed beside tfkd (the export's own check).
MIN_RUNTIMES = (DEFAULT_MIN_RUNTIME, None)
RUNTIME_NAMES = {"2.14": "TF Lite 2.14 (tflite-runtime 2.14.0)"}
# Ops a runtime registers at a version whose kernel still refuses an
# input type at the first invoke (the version was not bumped when the
# type was added). Measured on tflite-runtime 2.14.0: "Div only supports
# FLOAT32, INT32 and quantized UINT8 now, got 9."
KERNEL_TYPE_GAPS = {
    "2.14": {
        "DIV": ("INT8", "INT16"),
    },
}

_OP_NAMES = {
    code: name
    for name, code in vars(schema.BuiltinOperator).items()
    if not name.startswith("_")
}
_TYPE_NAMES = {
    code: name
    for name, code in vars(schema.TensorType).items()
    if not name.startswith("_")
}


class RuntimeCompatibilityError(ValueError):
    """The file needs a newer LiteRT than the export's `min_runtime`."""


def file_ops(model_bytes):
    """The operators of a `.tflite` file, as the runtime resolves them.

    Args:
        model_bytes: bytes of a `.tflite` file.

    Returns:
        A sorted list of dicts `{"op", "version", "input_types"}`, one
        per distinct operator signature; custom ops have `op` set to
        `"CUSTOM:<name>"`.

    Example:

    ```python
    file_ops(open("student.tflite", "rb").read())[0]
    # {'op': 'CONCATENATION', 'version': 2, 'input_types': ['INT8']}
    ```
    """
    model = schema.Model.GetRootAs(bytearray(model_bytes), 0)
    codes = [_op_name(model.OperatorCodes(i))
             for i in range(model.OperatorCodesLength())]
    found = set()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            name, version = codes[operator.OpcodeIndex()]
            types = tuple(
                _TYPE_NAMES.get(subgraph.Tensors(t).Type(), "UNKNOWN")
                for t in operator.InputsAsNumpy().tolist()
                if t >= 0
            )
            found.add((name, version, tuple(sorted(set(types)))))
    return [
        {"op": op, "version": version, "input_types": list(types)}
        for op, version, types in sorted(found)
    ]


def _op_name(code):
    if code.CustomCode():
        return "CUSTOM:" + code.CustomCode().decode(), code.Version()
    # Codes above 127 live in `builtin_code`; older files only fill the
    # deprecated byte.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}"), code.Version()


@functools.cache
def registered_ops(runtime):
    """The highest version of each builtin op `runtime` registers.

    Args:
        runtime: a target in `MIN_RUNTIMES` other than None.

    Returns:
        A dict from op name to its highest registered version.
    """
    path = os.path.join(
        os.path.dirname(__file__),
        f"runtime_ops_{runtime.replace('.', '_')}.json",
    )
    with open(path, encoding="utf-8") as f:
        return json.load(f)["max_version"]


def unsupported_ops(ops, runtime):
    """The operators of `ops` that `runtime` cannot run, with the reason.

    Args:
        ops: list from `file_ops`.
        runtime: a target in `MIN_RUNTIMES`; None accepts everything.

    Returns:
        A list of one-line strings, empty when the file runs there.
    """
    if runtime is None:
        return []
    registered = registered_ops(runtime)
    gaps = KERNEL_TYPE_GAPS.get(runtime, {})
    problems = []
    for entry in ops:
        op, version = entry["op"], entry["version"]
        if op.startswith("CUSTOM:"):
            problems.append(f"{op} (a custom op: no stock runtime has it)")
        elif op not in registered:
            problems.append(f"{op} (not in that runtime)")
        elif version > registered[op]:
            problems.append(
                f"{op} version {version} (it has up to {registered[op]})"
            )
        elif set(entry["input_types"]) & set(gaps.get(op, ())):
            types = sorted(set(entry["input_types"]) & set(gaps[op]))
            problems.append(f"{op} on {'/'.join(types)} inputs")
    return sorted(set(problems))


def check_runtime(model_bytes, min_runtime):
    """Raises unless the file runs on `min_runtime`; returns its ops.

    Args:
        model_bytes: bytes of the converted file.
        min_runtime: a target in `MIN_RUNTIMES`.

    Returns:
        The sidecar's `runtime` entry: the file's ops and the target.

    Raises:
        RuntimeCompatibilityError: If an op is missing there.
    """
    ops = file_ops(model_bytes)
    problems = unsupported_ops(ops, min_runtime)
    if problems:
        raise RuntimeCompatibilityError(
            f"Expected a file that runs on {RUNTIME_NAMES[min_runtime]}, "
            f"the oldest runtime this export targets; it needs "
            f"{'; '.join(problems)}. Nothing was written. Replace the "
            "operation in the model (e.g. a division by a count: multiply "
            "by a table of reciprocals), export without full-integer "
            "quantization, or pass min_runtime=None (--min-runtime latest) "
            "if every app runs today's LiteRT."
        )
    return {
        "min_runtime": min_runtime or "latest",
        "ops": ops,
    }


def validate_min_runtime(min_runtime):
    """Raises ValueError unless `min_runtime` is one of `MIN_RUNTIMES`."""
    if min_runtime not in MIN_RUNTIMES:
        raise ValueError(
            f"Expected `min_runtime` in {list(MIN_RUNTIMES)} (None: only "
            f"today's LiteRT). Received: min_runtime={min_runtime!r}"
        )
