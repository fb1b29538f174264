"""Tests for the tf_keras bridge, QAT and pruning fine-tunes."""

import json
import os

import keras
import keras_rs
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import tool_loading

from tfkd import datasets
from tfkd import losses
from tfkd import models
from tfkd.export import compression_finetune
from tfkd.export import pruning
from tfkd.export import qat
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.tf_keras_bridge import to_tf_keras


@pytest.fixture(scope="module")
def data():
    return datasets.synthetic_movielens(task="ctr", seed=0)


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(7)
    teacher = models.ranking_model(data.spec, cross_layers=1)
    student = models.ranking_model(
        data.spec, embedding_dim=4, hidden=(16,), cross_layers=1
    )
    for model in (teacher, student):
        model.compile(
            "adam", keras.losses.BinaryCrossentropy(from_logits=True)
        )
        model.fit(data.train, epochs=2, verbose=0, shuffle=False)
    return teacher, student


@pytest.fixture(scope="module")
def preset_student(data):
    keras.utils.set_random_seed(7)
    student = models.student(data.spec)
    student.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    student.fit(data.train, epochs=2, verbose=0, shuffle=False)
    return student


def _test_features(data):
    return datasets.features_from_frame(data.frames["test"], data.spec)


class TestToTfKeras:
    def test_ranking_model_outputs_equal(self, data):
        model = models.ranking_model(data.spec, cross_layers=1, dropout=0.1)
        twin = to_tf_keras(model)
        assert isinstance(twin, tf_keras.Model)
        features = _test_features(data)
        expected = np.asarray(model(features, training=False))
        actual = twin(features, training=False).numpy()
        np.testing.assert_allclose(actual, expected, atol=1e-5)
        assert sorted(t.name.split(":")[0] for t in twin.inputs) == sorted(
            data.spec.names
        )

    def test_out_of_range_ids_read_row_zero(self, data):
        twin = to_tf_keras(models.ranking_model(data.spec))
        features = {k: v[:3] for k, v in _test_features(data).items()}
        zeros = {k: np.zeros_like(v) for k, v in features.items()}
        bad = {k: np.full_like(v, -5) for k, v in features.items()}
        np.testing.assert_allclose(twin(bad).numpy(), twin(zeros).numpy())

    def test_feature_cross_options(self):
        # Projection, diagonal and pre-activation take other code paths
        # of keras-rs' FeatureCross; the twin must follow each one.
        x0 = keras.Input((6,), name="x")
        x = keras_rs.layers.FeatureCross(
            projection_dim=3, diag_scale=0.5, pre_activation="relu"
        )(x0)
        x = keras.layers.Reshape((3, 2))(x)
        x = keras.layers.Flatten()(x)
        model = keras.Model(x0, keras.layers.Dense(1)(x))
        values = np.random.default_rng(0).normal(size=(8, 6))
        values = values.astype(np.float32)
        np.testing.assert_allclose(
            to_tf_keras(model)(values).numpy(),
            np.asarray(model(values)),
            atol=1e-5,
        )

    def test_unsupported_layer_names_layer_and_class(self):
        inputs = keras.Input((4,), name="x")
        x = keras.layers.BatchNormalization(name="norm")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(x))
        with pytest.raises(ValueError, match="'norm' of class .*Batch"):
            to_tf_keras(model)

    def test_not_a_functional_model(self):
        with pytest.raises(TypeError, match="Functional"):
            to_tf_keras(keras.Sequential())


class TestDistillationLoss:
    @pytest.mark.parametrize("t", [1.0, 4.0], ids=["t1", "t4"])
    def test_matches_distiller_math(self, t):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, (16, 1)).astype(np.float32)
        teacher = rng.normal(size=(16, 1)).astype(np.float32) * 3
        student = rng.normal(size=(16, 1)).astype(np.float32) * 3
        alpha = 0.3
        hard = keras.losses.BinaryCrossentropy(from_logits=True)(
            labels, student
        )
        soft = losses.BinaryKLDivergence()(teacher / t, student / t) * t**2
        expected = alpha * float(hard) + (1 - alpha) * float(soft)
        y_true = tf.constant(np.concatenate([labels, teacher], axis=1))
        loss = compression_finetune.distillation_loss(alpha, t)
        actual = loss(y_true, student)
        assert float(tf.reduce_mean(actual)) == pytest.approx(
            expected, rel=1e-5
        )

    @pytest.mark.parametrize(
        "kwargs", [{"alpha": 1.5}, {"temperature": 0.0}],
        ids=["alpha", "temperature"],
    )
    def test_bad_values(self, kwargs):
        with pytest.raises(ValueError, match="must be"):
            compression_finetune.distillation_loss(**kwargs)


class TestQuantizationAwareFinetune:
    def test_int8_file_runs_with_sane_auc(self, data, trained, tmp_path):
        teacher, student = trained
        path = tmp_path / "qat.tflite"
        report = qat.quantization_aware_finetune(
            student, teacher, data.train, path, validation_data=data.test,
            learning_rate=1e-3, num_calibration_batches=10,
        )
        features = _test_features(data)
        labels = data.frames["test"]["label"].to_numpy()
        from tfkd import evaluation

        float_auc = evaluation.auc(labels, np.asarray(student(features)))
        assert abs(report.metric_after - float_auc) < 0.03
        runner = LiteRTRunner(path)
        assert runner.input_names == sorted(data.spec.names)
        details = runner.interpreter.get_tensor_details()
        assert any(d["dtype"] == np.int8 for d in details)
        assert report.bytes == os.path.getsize(path)
        with open(report.sidecar_path) as f:
            sidecar = json.load(f)
        # The one sidecar schema, as `to_tflite` writes it.
        assert sidecar["format_version"] == 2
        assert sidecar["task"] == "ranking"
        assert sidecar["compression"] == report.compression == "qat"
        assert sidecar["quantization"] == "int8"
        assert sidecar["outputs"][0]["kind"] == "logit"
        assert set(sidecar["unknown_ids"]["checked_inputs"]) >= {
            "user_id", "item_id"
        }
        assert sidecar["metrics"]["metric_after"] == report.metric_after
        assert report.max_abs_diff < 0.5
        assert "model" not in report.to_dict()

    @pytest.mark.parametrize("table_scale", [1.0, 8.0],
                             ids=["preset", "wide_user_table"])
    def test_int8_file_matches_qat_model(
        self, data, trained, preset_student, tmp_path, table_scale
    ):
        # The student preset (masked-mean genres, Concatenate, Dense): the
        # int8 file must compute what the QAT model computes. Regression:
        # TFMOT's [-6, 6] initial ranges (barely moved by a short
        # fine-tune) gave the Concatenate a scale of ~0.045 for embeddings
        # within +-0.5, and the genres mean then went through an int8 DIV
        # that LiteRT saturates to +-127 for small numerators (logits off
        # by up to 4.9). A user table 8x wider coarsens that scale the same
        # way with calibrated ranges.
        teacher, _ = trained
        student = keras.models.clone_model(preset_student)
        student.set_weights(preset_student.get_weights())
        table = student.get_layer("embeddings").table("user_id")
        table.assign(table.numpy() * table_scale)
        report = qat.quantization_aware_finetune(
            student, teacher, data.train, tmp_path / "qat.tflite",
            validation_data=data.test, num_calibration_batches=10,
        )
        features = _test_features(data)
        runner = LiteRTRunner(report.path)
        keras_logits = report.model(features, training=False).numpy()
        lite_logits = runner(features)[runner.output_names[0]]
        np.testing.assert_allclose(
            lite_logits.reshape(-1), keras_logits.reshape(-1), atol=0.05
        )
        assert abs(report.metric_after - report.metric_before) < 0.003
        # The fake-quant range of the Concatenate follows the data.
        concat = keras.Model(
            student.inputs, student.get_layer("embeddings").output
        )
        largest = float(np.abs(np.asarray(concat(features))).max())
        wrapper = report.model.get_layer("quant_embeddings")
        for weight in wrapper.weights:
            if "output_m" in weight.name:
                assert abs(float(weight.numpy())) < 1.5 * largest

    def test_cached_logits_must_match_examples(self, data, trained, tmp_path):
        _, student = trained
        with pytest.raises(ValueError, match="one teacher logit"):
            qat.quantization_aware_finetune(
                student, np.zeros(3), data.train, tmp_path / "q.tflite"
            )
        assert os.listdir(tmp_path) == []


class TestPruneFinetune:
    def test_reaches_target_sparsity(self, data, trained, tmp_path):
        teacher, student = trained
        report = pruning.prune_finetune(
            student, teacher, data.train, tmp_path / "pruned.tflite",
            validation_data=data.test, target_sparsity=0.5, epochs=2,
            learning_rate=1e-3, num_calibration_batches=10,
        )
        assert report.sparsity == pytest.approx(0.5, abs=0.02)
        for layer in report.model.layers:
            if type(layer) is tf_keras.layers.Dense:
                kernel = layer.kernel.numpy()
                assert np.mean(kernel == 0) == pytest.approx(0.5, abs=0.05)
        assert report.gzip_bytes < report.bytes
        assert report.metric_after > 0.6
        with open(report.sidecar_path) as f:
            sidecar = json.load(f)
        assert sidecar["compression"] == "pruning"
        assert sidecar["metrics"]["sparsity"] == report.sparsity

    def test_export_arguments_checked_before_the_finetune(
        self, data, trained, tmp_path
    ):
        # The same check as `to_tflite`, made before minutes of training.
        _, student = trained
        with pytest.raises(ValueError, match="max_metric_drop"):
            pruning.prune_finetune(
                student, np.zeros(3), data.train, tmp_path / "p.tflite",
                max_metric_drop=-1.0,
            )
        assert os.listdir(tmp_path) == []

    def test_bad_sparsity(self, data, trained, tmp_path):
        _, student = trained
        with pytest.raises(ValueError, match="target_sparsity"):
            pruning.prune_finetune(
                student, None, data.train, tmp_path / "p.tflite",
                target_sparsity=1.0,
            )


@pytest.mark.slow
def test_qat_report_on_movielens(tmp_path):
    # The README's QAT table, on the real data (about 45 s on 2 cores):
    # every int8 file must compute what its own model computes, and QAT
    # must not lose to post-training int8 by more than noise.
    qat_report = tool_loading.load_tool("qat_report")
    rows = {
        row["variant"]: row
        for row in qat_report.main(
            ["--out-dir", str(tmp_path), "--json", str(tmp_path / "r.json")]
        )
    }
    float_auc = rows["float32 student"]["auc"]
    # Published MovieLens-100K CTR AUCs are 0.80-0.90.
    assert float_auc > 0.82
    assert float_auc - rows["PTQ int8"]["auc"] < 0.003
    for variant in ("QAT int8", "pruned 50% int8"):
        row = rows[variant]
        assert abs(row["auc"] - row["model_auc"]) < 0.003, row
        assert row["bytes"] < rows["float32 student"]["bytes"] / 2
    assert rows["QAT int8"]["auc"] > rows["PTQ int8"]["auc"] - 0.003
    assert (rows["pruned 50% int8"]["gzip_bytes"]
            < rows["PTQ int8"]["gzip_bytes"])
    assert json.loads((tmp_path / "r.json").read_text())["rows"]
