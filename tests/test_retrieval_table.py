"""Tests for the `*_table` modes of `to_tflite_retrieval` (issue #14).

An item table stored as int16 / int8 with one scale, dequantized once by
LiteRT and scored in float32 (`tfkd.export.retrieval_table`); and the id
table left out when the catalogue's ids are `first + row`.
"""

import numpy as np
import pytest
import retrieval_helpers

from tfkd import datasets
from tfkd.export import converter_utils
from tfkd.export import retrieval_export
from tfkd.export import retrieval_table
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.retrieval_export import recall_at_k
from tfkd.export.retrieval_export import to_tflite_retrieval

K = 10


@pytest.fixture(scope="module")
def trained():
    return retrieval_helpers.trained_two_tower()


def _tensor_types_into(path, op_name):
    """Input tensor type names of every `op_name` operator in a `.tflite`."""
    from tensorflow.lite.tools import flatbuffer_utils

    schema = flatbuffer_utils.schema_fb
    code = getattr(schema.BuiltinOperator, op_name)
    names = {
        value: name for name, value in vars(schema.TensorType).items()
        if not name.startswith("_")
    }
    model = flatbuffer_utils.read_model(str(path))
    subgraph = model.subgraphs[0]
    return [
        names[subgraph.tensors[op.inputs[0]].type]
        for op in subgraph.operators
        if model.operatorCodes[op.opcodeIndex].builtinCode == code
    ]


class TestTableModes:
    """The `*_table` modes (issue #14): a narrow item table, float scores."""

    @pytest.mark.parametrize(
        "mode, tensor_type",
        [("int16_table", "INT16"), ("int8_table", "INT8")],
        ids=["int16", "int8"],
    )
    def test_top_k_of_the_stored_table(
        self, trained, tmp_path, mode, tensor_type
    ):
        data, model = trained
        report = to_tflite_retrieval(
            model, data.items, tmp_path / "t.tflite", quantization=mode,
            users=data.users, min_recall=0.0, latency_runs=1,
        )
        items = datasets.features_from_frame(
            data.items, data.spec, names=datasets.ITEM_FEATURES
        )
        users = datasets.features_from_frame(
            data.users, data.spec, names=datasets.USER_FEATURES
        )
        _, _, table = retrieval_table.quantize_table(
            model.item_model(items), mode
        )
        # LiteRT must score exactly the dequantized table, in float32.
        scores = np.asarray(model.user_model(users)) @ table.T
        out = LiteRTRunner(report.path)(users)
        expected = -np.sort(-scores, axis=1)[:, :K]
        np.testing.assert_allclose(
            out[retrieval_export.SCORES_OUTPUT], expected, atol=1e-5
        )
        assert recall_at_k(
            scores, items["item_id"], out[retrieval_export.IDS_OUTPUT], K,
            tie_atol=1e-5,
        ) == 1.0
        assert _tensor_types_into(report.path, "DEQUANTIZE") == [tensor_type]
        assert report.quantization == mode

    def test_int16_table_is_smaller_and_exact(self, trained, tmp_path):
        data, model = trained
        full = to_tflite_retrieval(
            model, data.items, tmp_path / "f32.tflite", users=data.users,
            latency_runs=1,
        )
        narrow = to_tflite_retrieval(
            model, data.items, tmp_path / "i16.tflite", users=data.users,
            quantization="int16_table", latency_runs=1,
        )
        # 300 items x 8 dims: 2 of the 4 bytes a weight saved, exactly.
        assert _constant_bytes(full.path) - _constant_bytes(
            narrow.path
        ) == 300 * 8 * 2
        assert narrow.recall_at_k >= 0.99
        assert narrow.min_recall == 0.99

    @pytest.mark.parametrize(
        "step, id_table", [(1, False), (-1, True)],
        ids=["contiguous", "reversed"],
    )
    def test_ids_table_only_when_needed(
        self, trained, tmp_path, step, id_table
    ):
        # Ids 1..M in row order are `first + row` (no id table); reversed
        # rows need one (a GATHER from int32 ids). Either way LiteRT
        # returns the Keras top-K ids.
        data, model = trained
        candidates = data.items.iloc[::step].reset_index(drop=True)
        report = to_tflite_retrieval(
            model, candidates, tmp_path / "r.tflite", users=data.users,
            latency_runs=1,
        )
        users = datasets.features_from_frame(
            data.users, data.spec, names=datasets.USER_FEATURES
        )
        ids = LiteRTRunner(report.path)(users)[retrieval_export.IDS_OUTPUT]
        expected = retrieval_helpers.keras_top_ids(model, data, users, K)
        assert np.mean([
            len(set(a) & set(b)) / K
            for a, b in zip(expected, ids, strict=True)
        ]) >= 0.99
        gathered = _tensor_types_into(report.path, "GATHER")
        assert ("INT32" in gathered) == id_table


class TestRetrievalTable:
    def test_quantize_int8_hand_computed(self):
        embeddings = np.array([[0.5, -1.0], [0.25, 0.0]])
        stored, scale, table = retrieval_table.quantize_table(
            embeddings, "int8_table"
        )
        # scale = max|V| / 127 = 1/127; 0.5 * 127 = 63.5 rounds to even.
        assert scale == pytest.approx(1 / 127)
        assert stored.dtype == np.int8
        assert stored.tolist() == [[64, -127], [32, 0]]
        np.testing.assert_allclose(table, stored * np.float32(scale))

    def test_all_zero_table_has_a_scale(self):
        stored, scale, _ = retrieval_table.quantize_table(
            np.zeros((2, 3)), "int16_table"
        )
        assert scale > 0 and not stored.any()

    def test_refuses_a_model_without_the_table(self):
        model_bytes = _small_model_bytes()
        table = np.ones((5, 4), np.float32)
        with pytest.raises(ValueError, match="hold the item table once"):
            retrieval_table.store_table(
                model_bytes, table, table.astype(np.int8), 1.0
            )


def _small_model_bytes():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
    def double(x):
        return x * 2.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [double.get_concrete_function()], double
    )
    return converter.convert()


def _constant_bytes(path):
    with open(path, "rb") as f:
        return converter_utils.constant_bytes(f.read())
