"""Item tables stored narrow in a retrieval export, scored in float32.

The converter's own modes cannot shrink a large item table without hurting
the ranking: `dynamic` stores it as int8 with a per-row scale (4 bytes of
scale and 8 of zero point per item, in the flatbuffer's quantization
parameters) and then scores with the user embedding quantized to int8 too,
and `float16` also rounds every weight of the user tower. The `*_table`
modes store only the item table narrow, as integers with one symmetric
scale, and leave everything else float32:

```
stored = round(V / s)  (int16: s = max|V| / 32767; int8: / 127)
V'     = s * stored    # DEQUANTIZE, a constant input: run once
scores = user_model(x) @ V'^T   # float32 FULLY_CONNECTED
```

The graph cannot say this itself (checked with TF 2.21): the converter
folds `cast(int16 table)` back into a float32 table, and keeps
`cast(int8 table)` as a CAST that runs on every call (1.19 ms at 100K x
32). So the file is converted with the float32 table `V'` and then
rewritten: the table's tensor gets its bytes from a new narrow tensor
through a `DEQUANTIZE` op. LiteRT evaluates a `DEQUANTIZE` of a constant
once and keeps the float32 result, so a request costs what the float32
file costs (measured: 100K x 16 table, 338 us int16 vs 331 us float32 a
fixed-shape call) while the file holds 2 or 1 bytes per weight. The
dequantized values are exactly `V'`, so the rewrite does not change a
single score.

Measured on a 100K-item synthetic catalogue, d=16, one epoch (recall@10
of float32 Keras retrieval): int16 1.0 with a 3.3 MB file; float16
rounding (a `float16_table` mode was tried) 0.989, no better than the
converter's `float16`; int8 0.76 (0.84 at d=32), as coarse as `dynamic`.
"""

import numpy as np
from tensorflow.lite.tools import flatbuffer_utils

# Storage dtype of each table mode.
TABLE_DTYPES = {
    "int16_table": np.int16,
    "int8_table": np.int8,
}
_SCHEMA = flatbuffer_utils.schema_fb
_TENSOR_TYPES = {
    np.int16: _SCHEMA.TensorType.INT16,
    np.int8: _SCHEMA.TensorType.INT8,
}
# DEQUANTIZE's op version by input type (TFLite's op_version.cc): 2 for
# int8, 3 for int16.
_DEQUANTIZE_VERSIONS = {np.int16: 3, np.int8: 2}


def quantize_table(embeddings, mode):
    """Rounds an item table to a table mode's storage.

    Args:
        embeddings: float array `(items, d)`. The item tower's outputs.
        mode: str. A key of `TABLE_DTYPES`.

    Returns:
        `(stored, scale, dequantized)`: the integer array, its scale and
        the float32 values LiteRT scores with.

    Example:

    >>> stored, scale, table = quantize_table(np.eye(2), "int8_table")
    >>> stored.tolist(), scale
    ([[127, 0], [0, 127]], 0.007874015718698502)
    """
    dtype = TABLE_DTYPES[mode]
    embeddings = np.asarray(embeddings, dtype=np.float32)
    largest = float(np.max(np.abs(embeddings), initial=0.0))
    # An all-zero table still needs a positive scale.
    scale = float(np.float32((largest or 1.0) / np.iinfo(dtype).max))
    stored = np.round(embeddings / np.float32(scale)).astype(dtype)
    return stored, scale, stored.astype(np.float32) * np.float32(scale)


def store_table(model_bytes, dequantized, stored, scale):
    """Rewrites a converted model to hold `stored` in place of its table.

    The float32 constant whose bytes equal `dequantized` becomes the
    output of a `DEQUANTIZE` op whose input is `stored`, with `scale`
    and zero point 0.

    Args:
        model_bytes: bytes. A `.tflite` flatbuffer converted with
            `dequantized` as a constant.
        dequantized: float32 array. The table as converted.
        stored: int8 or int16 array. The table (`quantize_table`).
        scale: float. Its scale.

    Returns:
        The rewritten model as bytes.

    Raises:
        ValueError: If the model does not hold the table exactly once
            (the converter transposed, split or folded it).

    Example:

    ```python
    stored, scale, table = quantize_table(embeddings, "int16_table")
    smaller = store_table(convert(table), table, stored, scale)
    ```
    """
    model = flatbuffer_utils.convert_bytearray_to_object(
        bytearray(model_bytes)
    )
    subgraph = model.subgraphs[0]
    table_tensor, buffer_index = _find_table(model, subgraph, dequantized)
    model.buffers[buffer_index].data = None
    buffer = _SCHEMA.BufferT()
    buffer.data = np.frombuffer(stored.tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    narrow = _SCHEMA.TensorT()
    narrow.shape = np.asarray(stored.shape, dtype=np.int32)
    narrow.type = _TENSOR_TYPES[stored.dtype.type]
    narrow.buffer = len(model.buffers) - 1
    narrow.quantization = _SCHEMA.QuantizationParametersT()
    narrow.quantization.scale = [scale]
    narrow.quantization.zeroPoint = [0]
    subgraph.tensors.append(narrow)
    operator = _SCHEMA.OperatorT()
    operator.opcodeIndex = _dequantize_code(model, stored.dtype.type)
    operator.inputs = np.asarray([len(subgraph.tensors) - 1], np.int32)
    operator.outputs = np.asarray([table_tensor], np.int32)
    # First, so the float32 table exists before any op reads it.
    subgraph.operators.insert(0, operator)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _find_table(model, subgraph, dequantized):
    target = np.ascontiguousarray(dequantized, dtype=np.float32).tobytes()
    buffers = [
        index for index, buffer in enumerate(model.buffers)
        if buffer.data is not None and len(buffer.data) == len(target)
        and buffer.data.tobytes() == target
    ]
    tensors = [
        index for index, tensor in enumerate(subgraph.tensors)
        if tensor.buffer in buffers
    ]
    if len(buffers) != 1 or len(tensors) != 1:
        raise ValueError(
            "Expected the converted model to hold the item table once, as "
            f"a float32 constant of shape {tuple(dequantized.shape)}. "
            f"Received: {len(buffers)} matching buffers used by "
            f"{len(tensors)} tensors. Use quantization=None or 'float16'."
        )
    return tensors[0], buffers[0]


def _dequantize_code(model, dtype):
    code = _SCHEMA.OperatorCodeT()
    code.builtinCode = _SCHEMA.BuiltinOperator.DEQUANTIZE
    code.deprecatedBuiltinCode = _SCHEMA.BuiltinOperator.DEQUANTIZE
    code.version = _DEQUANTIZE_VERSIONS[dtype]
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
