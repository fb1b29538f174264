"""Keras 3 model -> `.tflite` bytes, with the chosen quantization.

Conversion path: `model.export(dir, format="tf_saved_model")` then
`tf.lite.TFLiteConverter.from_saved_model(dir)`. Checked with TF 2.21 and
Keras 3.15: the SavedModel's `serving_default` signature keeps one input per
`keras.Input`, under its name, with its dtype (int32 ids) and a dynamic
batch axis (`shape_signature` -1), and LiteRT's signature runner then takes
batch 1 or batch 100 without an explicit resize. Keras' own
`format="litert"` export takes the same SavedModel route, but it turns on
SELECT_TF_OPS (a Flex delegate the app would have to ship) and writes
straight to the destination, which rules out the verify-then-rename write.
`from_keras_model` is the tf_keras-era entry point, used only for the
tf_keras twins that QAT and pruning fine-tune (`convert_tf_keras_model`).

What each mode does to a recommender (measured on the test model):
`dynamic` stores the large Embedding tables and Dense kernels as int8 and
dequantizes them at run time; tables under 1,024 weights stay float32.
`int8` stores every table and kernel as int8 and runs GATHER on int8
tables; int32 id inputs are left alone (only float tensors are quantized)
and the output stays float32 (the default `inference_output_type`).

The converter names every tensor after the TF ops it was fused from
("student_1/item_id_embedding_1/GatherV2/ReadVariableOp;..."); on the 11K
parameter student those names were 3.7 KB of a 28 KB int8 file. They are
debug strings: the interpreter and the signature runner address tensors by
index, so `strip_tensor_names` drops all but the signature's inputs and
outputs.
"""

import contextlib
import warnings

import numpy as np
import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

from tfkd._internal import compat as _compat
from tfkd._internal import temp_files
from tfkd.export.sidecar import SIGNATURE_KEY

# The SavedModel step's folder in the temp dir; see `temp_files`.
SAVED_MODEL_PREFIX = "tfkd_export_"
LOW_PRECISION_DTYPES = ("float16", "bfloat16")


def convert_keras_model(
    model, quantization, representative_data, num_calibration_batches,
    min_runtime=None,
):
    """Converts a Keras 3 model to LiteRT flatbuffer bytes.

    Args:
        model: `keras.Model`. The model to convert.
        quantization: None, `"dynamic"`, `"float16"` or `"int8"`.
        representative_data: `tf.data.Dataset` or None. Calibration data
            for `"int8"`: elements `(features, labels)` or `features`.
        num_calibration_batches: int. Elements of `representative_data`
            used for calibration.
        min_runtime: str or None. The oldest runtime the ops must suit
            (`runtime_target.MIN_RUNTIMES`). Defaults to `None`.

    Returns:
        The `.tflite` model as bytes.
    """
    with temp_files.owned_temp_dir(SAVED_MODEL_PREFIX) as saved_dir:
        with float32_compute(model):
            model.export(saved_dir, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_dir, signature_keys=[SIGNATURE_KEY]
        )
        return _convert(
            converter,
            quantization,
            representative_data,
            num_calibration_batches,
            _signature_input_specs(saved_dir),
            min_runtime,
        )


def convert_tf_keras_model(
    model, quantization, representative_data, num_calibration_batches
):
    """Converts a tf_keras model (QAT / pruning twin) to LiteRT bytes.

    TFMOT's wrappers only exist in tf_keras, whose models convert through
    `from_keras_model`; everything after that (calibration on
    `representative_data`, name stripping) is `convert_keras_model`'s.

    Args:
        model: `tf_keras.Model` with one named input per feature.
        quantization: None, `"dynamic"`, `"float16"` or `"int8"`.
        representative_data: `tf.data.Dataset` or None. As in
            `convert_keras_model`.
        num_calibration_batches: int. Elements of `representative_data`
            used for calibration.

    Returns:
        The `.tflite` model as bytes.
    """
    input_specs = {
        tensor.name.split(":")[0]: tf.TensorSpec(tensor.shape, tensor.dtype)
        for tensor in model.inputs
    }
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return _convert(
        converter, quantization, representative_data,
        num_calibration_batches, input_specs,
    )


def _convert(converter, quantization, data, num_batches, input_specs,
             min_runtime=None):
    _configure(converter, quantization, data, num_batches, input_specs)
    dynamic_range_for(converter, quantization, min_runtime)
    with warnings.catch_warnings():
        # int8 calibration runs TF's own deprecated tf.lite.Interpreter
        # inside the converter; the warning is not about tfkd's code.
        warnings.filterwarnings(
            "ignore", message=".*tf.lite.Interpreter is deprecated"
        )
        # Int32 id inputs are never quantized; the converter still asks
        # for their ranges.
        warnings.filterwarnings(
            "ignore", message="Statistics for quantized inputs"
        )
        return strip_tensor_names(converter.convert())


@contextlib.contextmanager
def float32_compute(model):
    """Runs the mixed-precision layers of `model` in float32 meanwhile.

    A student trained under a `mixed_float16` or `mixed_bfloat16` policy
    keeps float32 variables but computes in 16 bits; the LiteRT converter
    refuses its float16 ops ("'tf.MatMul' op is neither a custom op nor a
    flex op", checked with TF 2.21). Tracing with float32 compute gives a
    model that takes the same inputs and returns float32, on the same
    weights.
    Each layer's policy is put back on exit, even on an error.

    Args:
        model: `keras.Model`.

    Yields:
        None, with the policies switched.

    Example:

    ```python
    with float32_compute(student):
        student.export(saved_dir, format="tf_saved_model")
    ```
    """
    changed = []
    for layer in [model, *_compat.all_layers(model)]:
        policy = layer.dtype_policy
        if (
            policy.compute_dtype in LOW_PRECISION_DTYPES
            and policy.variable_dtype == "float32"
            and policy.quantization_mode is None
        ):
            changed.append((layer, policy))
            layer.dtype_policy = "float32"
    try:
        yield
    finally:
        for layer, policy in changed:
            layer.dtype_policy = policy


def strip_tensor_names(model_bytes: bytes) -> bytes:
    """Drops the names of a LiteRT model's internal tensors.

    Unlike TF's `flatbuffer_utils.strip_strings`, which also deletes the
    signature defs (and with them the `serving_default` signature an app
    calls), this keeps the signatures, the operator codes, the metadata,
    and the names of the subgraphs' input and output tensors, so
    `get_input_details()` still reports feature names.

    Args:
        model_bytes: bytes. A `.tflite` flatbuffer.

    Returns:
        The same model as bytes, with internal tensor names left empty.

    Example:

    ```python
    smaller = strip_tensor_names(converter.convert())
    ```
    """
    model = flatbuffer_utils.convert_bytearray_to_object(
        bytearray(model_bytes)
    )
    for subgraph in model.subgraphs:
        keep = set(subgraph.inputs) | set(subgraph.outputs)
        for index, tensor in enumerate(subgraph.tensors):
            if index not in keep:
                tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def constant_bytes(model_bytes: bytes) -> int:
    """Bytes of constant data (weights, tables, biases) in a LiteRT model.

    The rest of the file is the graph: operators, tensor descriptions,
    quantization parameters and signatures. Quantization shrinks only the
    constants, so `constant_bytes` shows what it can reach on a given
    model.

    Args:
        model_bytes: bytes. A `.tflite` flatbuffer.

    Returns:
        int. The summed size of the model's buffers.

    Example:

    ```python
    with open("student.tflite", "rb") as f:
        weights = constant_bytes(f.read())
    ```
    """
    model = flatbuffer_utils.convert_bytearray_to_object(
        bytearray(model_bytes)
    )
    # Metadata (runtime version, conversion options) lives in buffers too.
    metadata = {entry.buffer for entry in model.metadata or []}
    return sum(
        len(buffer.data)
        for index, buffer in enumerate(model.buffers)
        if buffer.data is not None and index not in metadata
    )


def _signature_input_specs(saved_dir):
    loaded = tf.saved_model.load(saved_dir)
    signature = loaded.signatures[SIGNATURE_KEY]
    return signature.structured_input_signature[1]


def _configure(converter, quantization, data, num_batches, input_specs):
    if quantization is None:
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.representative_dataset = _calibration_generator(
            data, num_batches, input_specs
        )
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]


def dynamic_range_for(converter, quantization, min_runtime):
    """Keeps `"dynamic"`'s Dense kernels within `min_runtime`'s ops.

    Per-channel int8 kernels with float activations are FULLY_CONNECTED
    version 12, which TF Lite 2.14 does not register (the file fails to
    load there); one scale per kernel is version 3.
    """
    if quantization == "dynamic" and min_runtime is not None:
        converter._experimental_disable_per_channel_quantization_for_dense_layers = (  # noqa: E501
            True
        )


def _calibration_generator(data, num_batches, input_specs):
    def generate():
        batch_size = None
        for element in data.take(num_batches).as_numpy_iterator():
            sample = calibration_sample(element, input_specs)
            size = next(iter(sample.values())).shape[0]
            batch_size = batch_size or size
            # The TF calibrator sizes the model once, on the first sample;
            # a smaller final batch then fails in CONCATENATION ("64 !=
            # 256"), so it is left out of the calibration.
            if size == batch_size:
                yield sample

    return generate


def calibration_sample(element, input_specs):
    """Turns one dataset element into a converter calibration sample.

    Args:
        element: `features` dict, or a tuple whose first item is one.
        input_specs: dict of input name to `tf.TensorSpec`.

    Returns:
        A dict of input name to NumPy array with a batch axis.

    Raises:
        ValueError: If a model input is missing from the element.
    """
    features = element[0] if isinstance(element, tuple) else element
    if not isinstance(features, dict):
        raise TypeError(
            "Expected `representative_data` elements to be a dict of "
            "features or a (features, labels) tuple. Received: "
            f"element of type {type(features).__name__}"
        )
    missing = sorted(set(input_specs) - set(features))
    if missing:
        raise ValueError(
            f"`representative_data` lacks model inputs {missing}. "
            f"Received: features={sorted(features)}"
        )
    sample = {}
    for name, spec in input_specs.items():
        array = np.asarray(features[name]).astype(spec.dtype.as_numpy_dtype)
        if array.ndim == len(spec.shape) - 1:
            array = array[np.newaxis, ...]
        sample[name] = array
    return sample
