"""Probes which builtin ops, at which versions, an old LiteRT registers.

Writes `tfkd/export/runtime_ops_<target>.json`, the table
`tfkd.export.runtime_target` checks exported files against. Each probe is
a valid one-ADD model carrying one extra, unused operator code: the
interpreter resolves every operator code when it loads a file, so the
file loads exactly when the runtime registers that op at that version.

    .venv/bin/python tools/probe_runtime_ops.py \
        --python .venv-tflite214/bin/python --target 2.14

`--load DIR` is the half that runs under the old runtime's Python (only
NumPy and `tflite_runtime` there).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

# Above every version any builtin op has reached.
MAX_PROBED_VERSION = 20
# Builtin codes above this live in `builtin_code` only.
PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def base_model(schema):
    """A float32 model computing x + x with one ADD (version 1)."""
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT(), schema.BufferT()]
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer = [1], 0, 1
    tensor.name = "x"
    out = schema.TensorT()
    out.shape, out.type, out.buffer, out.name = [1], 0, 0, "y"
    add = schema.OperatorT()
    add.opcodeIndex, add.inputs, add.outputs = 0, [0, 0], [1]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = [tensor, out], [add]
    subgraph.inputs, subgraph.outputs = [0], [1]
    model.subgraphs = [subgraph]
    model.operatorCodes = [_code(schema, schema.BuiltinOperator.ADD, 1)]
    return model


def _code(schema, builtin, version):
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = version
    return code


def write_probes(directory):
    """One file per (op, version); returns {file name: (op, version)}."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    probes = {}
    for name, builtin in sorted(vars(schema.BuiltinOperator).items()):
        if name.startswith("_") or name in ("CUSTOM", "DELEGATE"):
            continue
        for version in range(1, MAX_PROBED_VERSION + 1):
            model = base_model(schema)
            model.operatorCodes.append(_code(schema, builtin, version))
            builder = flatbuffers.Builder(1024)
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            file_name = f"{name}-{version}.tflite"
            with open(os.path.join(directory, file_name), "wb") as f:
                f.write(builder.Output())
            probes[file_name] = (name, version)
    return probes


def load_all(directory):
    """Under the old runtime: {file name: loads} for every probe file."""
    import numpy as np
    from tflite_runtime.interpreter import Interpreter

    loads = {}
    for file_name in sorted(os.listdir(directory)):
        try:
            interpreter = Interpreter(os.path.join(directory, file_name))
            interpreter.allocate_tensors()
            interpreter.set_tensor(0, np.ones(1, np.float32))
            interpreter.invoke()
            loads[file_name] = True
        except (ValueError, RuntimeError):
            loads[file_name] = False
    return loads


def probe(python, target):
    with tempfile.TemporaryDirectory() as directory:
        probes = write_probes(directory)
        result = subprocess.run(
            [python, __file__, "--load", directory],
            check=True, capture_output=True, text=True,
        )
        version = subprocess.run(
            [python, "-c",
             "import tflite_runtime; print(tflite_runtime.__version__)"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    loads = json.loads(result.stdout)
    if not loads.get("ADD-1.tflite"):
        sys.exit("the base model itself does not load: the probe is wrong")
    max_version = {}
    for file_name, (name, op_version) in probes.items():
        if loads[file_name]:
            max_version[name] = max(max_version.get(name, 0), op_version)
    return {
        "runtime": f"tflite-runtime {version}",
        "target": target,
        "command": "tools/probe_runtime_ops.py --python <its python> "
                   f"--target {target}",
        "max_version": dict(sorted(max_version.items())),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="the old runtime's interpreter")
    parser.add_argument("--target", default="2.14")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(load_all(args.load)))
        return
    table = probe(args.python, args.target)
    path = os.path.join(
        os.path.dirname(__file__), "..", "tfkd", "export",
        f"runtime_ops_{args.target.replace('.', '_')}.json",
    )
    with open(path, "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    print(f"{len(table['max_version'])} ops registered by "
          f"{table['runtime']} -> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
