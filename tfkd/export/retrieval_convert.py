"""The towers and item table of a retrieval export, as LiteRT bytes.

`convert_retrieval` traces `serve` (user tower -> matmul with the constant
item table -> top-K -> item ids) into a SavedModel and converts it with
TFLITE_BUILTINS only; the `*_table` modes then store the table narrow
(`retrieval_table`).
"""

import keras
import numpy as np
import tensorflow as tf

from tfkd._internal import model_utils
from tfkd._internal import temp_files
from tfkd.export import retrieval_inputs
from tfkd.export import retrieval_table
from tfkd.export.converter_utils import SIGNATURE_KEY
from tfkd.export.converter_utils import dynamic_range_for
from tfkd.export.converter_utils import float32_compute
from tfkd.export.converter_utils import strip_tensor_names
from tfkd.export.sidecar import RETRIEVAL_OUTPUT_KINDS

IDS_OUTPUT, SCORES_OUTPUT = RETRIEVAL_OUTPUT_KINDS


def convert_retrieval(user_model, item_embeddings, item_ids, k,
                      quantization, min_runtime=None):
    """Converts the user tower and a constant item table to LiteRT bytes.

    Args:
        user_model: `keras.Model`. The user tower, unknown ids mapped.
        item_embeddings: float32 array `(items, d)`. The item table.
        item_ids: int array `(items,)`. The id returned for each row.
        k: int. Items returned per user.
        quantization: str or None. A `to_tflite_retrieval` mode.
        min_runtime: str or None. The oldest runtime the ops must suit.
            Defaults to `None`.

    Returns:
        The `.tflite` flatbuffer as bytes, internal tensor names stripped.

    Example:

    ```python
    model_bytes = convert_retrieval(user_model, table, ids, 10, None)
    ```
    """
    if quantization not in retrieval_table.TABLE_DTYPES:
        return strip_tensor_names(_convert_float(
            user_model, item_embeddings, item_ids, k, quantization,
            min_runtime,
        ))
    stored, scale, table = retrieval_table.quantize_table(
        item_embeddings, quantization
    )
    model_bytes = _convert_float(user_model, table, item_ids, k, None)
    return strip_tensor_names(
        retrieval_table.store_table(model_bytes, table, stored, scale)
    )


def _row_to_id(item_ids):
    """Maps top-K rows to item ids, as one add for a contiguous range."""
    first = item_ids[0]
    if np.array_equal(item_ids, first + np.arange(len(item_ids))):
        # A catalogue numbered 1..M (MovieLens, the synthetic one) needs
        # no id table: 4 bytes an item, 0.4 MB of a 100K-item file.
        return lambda rows: tf.cast(rows, item_ids.dtype) + first
    ids = tf.constant(item_ids)
    return lambda rows: tf.gather(ids, rows)


def _convert_float(user_model, item_embeddings, item_ids, k, quantization,
                   min_runtime=None):
    embeddings = tf.constant(item_embeddings)
    row_to_id = _row_to_id(np.asarray(item_ids))
    specs = {
        name: tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype, name=name)
        for name, t in zip(
            model_utils.input_names(user_model),
            retrieval_inputs.declared_tensors(user_model),
            strict=True,
        )
    }

    def serve(features):
        inputs = model_utils.select_inputs(user_model, features, "user tower")
        users = tf.cast(user_model(inputs, training=False), tf.float32)
        scores = tf.matmul(users, embeddings, transpose_b=True)
        top_scores, top_rows = tf.math.top_k(scores, k=k)
        return {
            IDS_OUTPUT: row_to_id(top_rows),
            SCORES_OUTPUT: top_scores,
        }

    # An ExportArchive (not a bare tf.Module) so the Keras variables are
    # frozen into constants; a tf.Module kept them as VAR_HANDLE ops that
    # LiteRT leaves uninitialised (NaN scores).
    archive = keras.export.ExportArchive()
    archive.track(user_model)
    with temp_files.owned_temp_dir("tfkd_retrieval_") as saved_dir:
        # The endpoint is traced when written out, so both run with the
        # mixed-precision layers computing in float32.
        with float32_compute(user_model):
            archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=[specs])
            archive.write_out(saved_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_dir, signature_keys=[SIGNATURE_KEY]
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        dynamic_range_for(converter, quantization, min_runtime)
        return converter.convert()
