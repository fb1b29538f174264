"""`to_tflite` on hand-built Keras models (issue 11, export side).

Users export their own models as often as tfkd's: plain
`keras.layers.Embedding`, inputs declared as a list or a dict, a sigmoid
head, a mixed-precision policy. Each test builds such a model and checks
the LiteRT file against it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema  # noqa: E402
from tensorflow.lite.tools import flatbuffer_utils  # noqa: E402

import tfkd  # noqa: E402
from tfkd import export  # noqa: E402
from tfkd.export import id_mapping  # noqa: E402
from tfkd.export.converter_utils import convert_keras_model  # noqa: E402

ITEMS, USERS = 5, 7
OUT_OF_RANGE = [-1, 2**31 - 1]


def _embedding(rows, seed, **kwargs):
    return keras.layers.Embedding(
        rows, 2,
        embeddings_initializer=keras.initializers.RandomNormal(seed=seed),
        **kwargs,
    )


def _head(x, activation=None, units=1):
    return keras.layers.Dense(
        units, activation=activation,
        kernel_initializer=keras.initializers.GlorotNormal(seed=3),
        bias_initializer=keras.initializers.Constant(0.1),
    )(x)


def build_model(structure="list", activation=None):
    """item_id and user_id through plain Embeddings into one Dense.

    The list puts item_id before user_id: not the sorted order Keras uses
    when it flattens a dict of features.
    """
    item = keras.Input((), dtype="int32", name="item_id")
    user = keras.Input((), dtype="int32", name="user_id")
    hidden = keras.layers.Concatenate()(
        [_embedding(ITEMS, 1)(item), _embedding(USERS, 2)(user)]
    )
    output = _head(hidden, activation)
    inputs = [item, user]
    if structure == "dict":
        inputs = {"item_id": item, "user_id": user}
    return keras.Model(inputs, output, name=f"{structure}_model")


def _features(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "item_id": rng.integers(0, ITEMS, n).astype("int32"),
        "user_id": rng.integers(0, USERS, n).astype("int32"),
    }


def _with_extra_columns(features):
    # "a_extra" sorts before the model's inputs and "zz_extra" after, so
    # matching by position would feed one of them to the model.
    n = len(features["item_id"])
    return dict(
        features,
        a_extra=np.full(n, 3, "int32"),
        zz_extra=np.full(n, 4, "int32"),
    )


def _by_name(model, features):
    return np.asarray(
        model(tfkd._internal.model_utils.select_inputs(model, features))
    ).reshape(-1)


def _dataset(model, features, extra_columns=True):
    # Labels: the model's own ranking split at its median, so AUC = 1.0
    # exactly when the model is fed the right columns.
    scores = _by_name(model, features)
    labels = (scores > np.median(scores)).astype("float32")
    if extra_columns:
        features = _with_extra_columns(features)
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(16)


def _export(model, path, **kwargs):
    kwargs.setdefault("latency_runs", 1)
    return export.to_tflite(model, str(path), **kwargs)


def _sidecar(report):
    with open(report.sidecar_path) as f:
        return json.load(f)


def _operator_counts(model_bytes):
    names = {
        code: name
        for name, code in vars(schema.BuiltinOperator).items()
        if not name.startswith("_")
    }
    model = flatbuffer_utils.convert_bytearray_to_object(
        bytearray(model_bytes)
    )
    counts = {}
    for op in model.subgraphs[0].operators:
        name = names[model.operatorCodes[op.opcodeIndex].builtinCode]
        counts[name] = counts.get(name, 0) + 1
    return counts


class TestFeedsEachModelByName:
    @pytest.mark.parametrize("structure", ["list", "dict"])
    def test_extra_columns_do_not_shift_inputs(self, structure, tmp_path):
        model = build_model(structure)
        features = _features()
        report = _export(
            model, tmp_path / "m.tflite",
            validation_data=_dataset(model, features),
        )
        # Fed by position, the dict model reads a_extra as item_id: its
        # AUC on its own median split would no longer be 1.
        assert report.metric_before == 1.0
        assert report.metric_after == 1.0
        assert report.max_abs_diff < 1e-5

    def test_int8_calibrates_with_extra_columns(self, tmp_path):
        model = build_model("dict")
        data = _dataset(model, _features(64))
        report = _export(
            model, tmp_path / "m.tflite", quantization="int8",
            representative_data=data, validation_data=data,
            num_calibration_batches=4, allow_metric_drop=True,
        )
        assert report.max_abs_diff < 0.05

    @pytest.mark.parametrize(
        "argument", ["validation_data", "representative_data"]
    )
    def test_missing_column_names_it_and_the_model(self, argument,
                                                   tmp_path):
        model = build_model("list")
        features = _features()
        del features["user_id"]
        data = tf.data.Dataset.from_tensor_slices(
            (features, np.zeros(40, "float32"))
        ).batch(8)
        kwargs = {argument: data}
        if argument == "representative_data":
            kwargs["quantization"] = "int8"
        with pytest.raises(ValueError, match=r"'list_model'.*\['user_id'\]"):
            _export(model, tmp_path / "m.tflite", **kwargs)
        assert os.listdir(tmp_path) == []


class TestProbabilityOutputs:
    @pytest.mark.parametrize(
        "head", ["dense_sigmoid", "ops_sigmoid"]
    )
    def test_sigmoid_head_is_recorded_as_probability(self, head,
                                                     tmp_path):
        if head == "dense_sigmoid":
            model = build_model("dict", activation="sigmoid")
        else:
            logits = build_model("dict")
            model = keras.Model(
                logits.input, keras.ops.sigmoid(logits.output)
            )
        features = _features()
        report = _export(model, tmp_path / "p.tflite",
                         validation_data=_dataset(model, features))
        assert report.output_kind == "probability"
        (output,) = _sidecar(report)["outputs"]
        assert output["kind"] == "probability"
        assert output["activation"] == "sigmoid"
        assert "sigmoid" not in output["meaning"].split("(")[0]
        runner = export.LiteRTRunner(report.path)
        scores = runner(features)["output_0"].reshape(-1)
        # The file returns the model's probabilities, not sigmoid of them.
        np.testing.assert_allclose(scores, _by_name(model, features),
                                   atol=1e-6)
        assert 0.0 < scores.min() and scores.max() < 1.0

    def test_softmax_head_is_recorded_as_probabilities(self, tmp_path):
        inputs = keras.Input((3,), name="x")
        model = keras.Model(inputs, _head(inputs, "softmax", units=2))
        report = _export(model, tmp_path / "s.tflite")
        (output,) = _sidecar(report)["outputs"]
        assert (output["kind"], output["activation"]) == (
            "probability", "softmax"
        )
        assert "summing to 1" in output["meaning"]

    def test_logit_head_stays_logit(self, tmp_path):
        report = _export(build_model("dict"), tmp_path / "l.tflite")
        assert report.output_kind == "logit"
        (output,) = _sidecar(report)["outputs"]
        assert output["kind"] == "logit"
        assert "activation" not in output

    @pytest.mark.parametrize(
        "activation,output_kind,fragment",
        [
            ("sigmoid", "logit", 'Pass output_kind="probability"'),
            (None, "probability", 'Pass output_kind="logit"'),
        ],
        ids=["logit_on_sigmoid", "probability_on_logits"],
    )
    def test_refuses_output_kind_that_contradicts_head(
        self, activation, output_kind, fragment, tmp_path
    ):
        model = build_model("dict", activation=activation)
        with pytest.raises(ValueError, match=fragment):
            _export(model, tmp_path / "m.tflite", output_kind=output_kind)
        assert os.listdir(tmp_path) == []

    def test_refuses_log_softmax_head(self, tmp_path):
        inputs = keras.Input((3,), name="x")
        model = keras.Model(inputs, _head(inputs, "log_softmax", units=2))
        with pytest.raises(ValueError, match="applies a log_softmax"):
            _export(model, tmp_path / "m.tflite")

    def test_refuses_softmax_over_one_unit(self, tmp_path):
        model = build_model("dict", activation="softmax")
        with pytest.raises(ValueError, match="always 1"):
            _export(model, tmp_path / "m.tflite")


class TestUnknownIds:
    @pytest.mark.parametrize("quantization", [None, "int8"],
                             ids=["float32", "int8"])
    def test_plain_embeddings_map_unknown_ids_to_zero(self, quantization,
                                                      tmp_path):
        model = build_model("list")
        data = _dataset(model, _features(64))
        report = _export(
            model, tmp_path / "m.tflite", quantization=quantization,
            representative_data=data if quantization else None,
            validation_data=data, num_calibration_batches=4,
            allow_metric_drop=True,
        )
        expected = {
            "scored": "as id 0",
            "checked_inputs": ["item_id", "user_id"],
            "mapped_inputs": {"item_id": ITEMS, "user_id": USERS},
        }
        assert report.unknown_ids == expected
        assert _sidecar(report)["unknown_ids"] == expected
        runner = export.LiteRTRunner(report.path)
        zeros = {"item_id": [0, 2], "user_id": [3, 0]}
        for name in ("item_id", "user_id"):
            for bad in OUT_OF_RANGE:
                request = dict(zeros, **{name: [bad, bad]})
                reference = dict(zeros, **{name: [0, 0]})
                np.testing.assert_array_equal(
                    runner(request)["output_0"],
                    runner(reference)["output_0"],
                )

    def test_unmapped_plain_embedding_would_crash_litert(self, tmp_path):
        # Why the mapping exists: the same model converted as is fails on
        # LiteRT at the first id past its table.
        model = build_model("dict")
        path = tmp_path / "raw.tflite"
        path.write_bytes(convert_keras_model(model, None, None, 1))
        runner = export.LiteRTRunner(path)
        with pytest.raises(RuntimeError, match="out of bounds|gather"):
            runner({"item_id": [2**31 - 1], "user_id": [0]})

    def test_ids_through_reshape_and_nested_sequential(self, tmp_path):
        ids = keras.Input((1,), dtype="int32", name="item_id")
        tower = keras.Sequential(
            [keras.Input((), dtype="int32"), _embedding(ITEMS, 1)]
        )
        squeezed = keras.ops.squeeze(ids, axis=1)
        user = keras.Input((1,), dtype="int32", name="user_id")
        user_vector = keras.layers.Flatten()(_embedding(USERS, 2)(
            keras.layers.Reshape((1,))(user)
        ))
        model = keras.Model(
            {"item_id": ids, "user_id": user},
            _head(keras.layers.Concatenate()([tower(squeezed),
                                              user_vector])),
        )
        report = _export(model, tmp_path / "m.tflite")
        assert report.unknown_ids["mapped_inputs"] == {
            "item_id": ITEMS, "user_id": USERS
        }

    def test_mask_zero_drops_unknown_ids_like_padding(self, tmp_path):
        # With mask_zero, id 0 is padding: an unknown id mapped to 0 is
        # left out of the masked mean, like padding. [3, -1] and [3, 0]
        # then both score as [3] alone.
        genres = keras.Input((2,), dtype="int32", name="genres")
        vectors = _embedding(ITEMS, 1, mask_zero=True)(genres)
        pooled = keras.layers.GlobalAveragePooling1D()(vectors)
        model = keras.Model({"genres": genres}, _head(pooled))
        report = _export(model, tmp_path / "m.tflite")
        assert report.unknown_ids["mapped_inputs"] == {"genres": ITEMS}
        runner = export.LiteRTRunner(report.path)
        padded = runner({"genres": [[3, 0]]})["output_0"]
        for bad in OUT_OF_RANGE:
            np.testing.assert_allclose(
                runner({"genres": [[3, bad]]})["output_0"], padded,
                atol=1e-6,
            )
        keras_alone = np.asarray(model({"genres": np.array([[3, 0]])}))
        np.testing.assert_allclose(padded, keras_alone, atol=1e-6)

    def test_sequential_model(self, tmp_path):
        model = keras.Sequential([
            keras.Input((), dtype="int32", name="item_id"),
            _embedding(ITEMS, 1),
            keras.layers.Dense(1, activation="sigmoid"),
        ])
        report = _export(model, tmp_path / "m.tflite")
        assert report.output_kind == "probability"
        assert report.unknown_ids["mapped_inputs"] == {"item_id": ITEMS}

    def test_one_input_two_tables_maps_each_lookup(self, tmp_path):
        # item_id reads a 3-row and a 6-row table: id 4 is valid in one
        # and unknown in the other, so each lookup gets its own range.
        ids = keras.Input((), dtype="int32", name="item_id")
        both = keras.layers.Concatenate()(
            [_embedding(3, 1)(ids), _embedding(6, 2)(ids)]
        )
        model = keras.Model({"item_id": ids}, _head(both))
        report = _export(model, tmp_path / "m.tflite")
        assert report.unknown_ids["mapped_inputs"] == {"item_id": [3, 6]}
        runner = export.LiteRTRunner(report.path)
        small, large = model.layers[1], model.layers[2]
        # By hand: id 4 reads row 0 of the small table, row 4 of the
        # large one.
        expected = model.layers[-1](keras.ops.concatenate(
            [small.embeddings[:1], large.embeddings[4:5]], axis=-1
        ))
        np.testing.assert_allclose(
            runner({"item_id": [4]})["output_0"], np.asarray(expected),
            atol=1e-6,
        )

    def test_clone_gathers_without_negative_index_fix(self):
        # Keras' lookup adds LESS, ADD, SELECT_V2 before each GATHER to
        # wrap negative ids; after the mapping ids are never negative, so
        # the exported graph has the 4 mapping ops and a bare GATHER.
        model = build_model("dict")
        raw = _operator_counts(convert_keras_model(model, None, None, 1))
        mapped_model, _ = id_mapping.map_unknown_ids(model)
        counts = _operator_counts(
            convert_keras_model(mapped_model, None, None, 1)
        )
        assert raw.get("ADD") == 2 and "ADD" not in counts, counts
        for op in ("GREATER_EQUAL", "LESS", "LOGICAL_AND", "SELECT_V2",
                   "GATHER"):
            assert counts[op] == 2, counts
        assert sum(counts.values()) == sum(raw.values()) + 2

    def test_tfkd_student_is_converted_unchanged(self):
        # FeatureEmbedding maps its ids itself: no op may be added.
        data = tfkd.datasets.synthetic_movielens(task="ctr")
        student = tfkd.models.student(data.spec)
        mapped_model, mapped = id_mapping.map_unknown_ids(student)
        assert mapped_model is student and mapped == {}
        assert id_mapping.lookup_input_names(student) == sorted(
            f.name for f in data.spec.features
        )


class TestMisuse:
    def test_refuses_distiller(self, tmp_path):
        teacher, student = build_model("dict"), build_model("dict")
        distiller = tfkd.Distiller(teacher=teacher, student=student)
        with pytest.raises(TypeError, match="export `distiller.student`"):
            _export(distiller, tmp_path / "d.tflite")
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize(
        "policy,atol",
        # 16-bit compute against the float32 file: float16 keeps ~3
        # decimal digits, bfloat16 ~2, on outputs of scale ~1.
        [("mixed_float16", 5e-3), ("mixed_bfloat16", 5e-2)],
        ids=["float16", "bfloat16"],
    )
    def test_exports_mixed_precision_student(self, policy, atol, tmp_path):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            model = build_model("dict", activation="sigmoid")
        finally:
            keras.config.set_dtype_policy(previous)
        features = _features()
        report = _export(model, tmp_path / "m.tflite",
                         validation_data=_dataset(model, features))
        assert report.max_abs_diff < atol
        runner = export.LiteRTRunner(report.path)
        assert {d["dtype"] for d in runner.input_details.values()} == {
            np.int32
        }
        assert runner.output_details["output_0"]["dtype"] == np.float32
        np.testing.assert_allclose(
            runner(features)["output_0"].reshape(-1),
            _by_name(model, features).astype("float32"),
            atol=atol,
        )
        # The user's model is left as it was: still 16-bit compute.
        assert all(
            layer.dtype_policy.name == policy
            for layer in model.layers
            if isinstance(layer, keras.layers.Dense)
        )
