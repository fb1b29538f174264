"""Tests for `tfkd.FeatureDistillation`: a hint through a learned projection
(issue 13), checked against a NumPy reference."""

import json
import os
import subprocess
import sys

import backend_worker
import keras
import numpy as np
import pytest

import tfkd

N_FEATURES = 6
ROWS = 32
ALPHA, TEMPERATURE = 0.2, 2.0


def _mlp(width, name, seed):
    inputs = keras.Input((N_FEATURES,), name="x")
    hidden = keras.layers.Dense(
        width, activation="relu", name=f"{name}_hidden",
        kernel_initializer=keras.initializers.GlorotUniform(seed),
    )(inputs)
    outputs = keras.layers.Dense(
        1, name=f"{name}_logit",
        kernel_initializer=keras.initializers.GlorotUniform(seed + 1),
    )(hidden)
    return keras.Model(inputs, outputs, name=name)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(ROWS, N_FEATURES)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("float32")
    return x, y


def _hint(weight=0.5, **kwargs):
    kwargs.setdefault("teacher_layer", "teacher_hidden")
    kwargs.setdefault("student_layer", "student_hidden")
    return tfkd.FeatureDistillation(weight=weight, **kwargs)


def _distiller(hint, teacher=None, student=None, lr=0.1):
    distiller = tfkd.Distiller(
        teacher=teacher or _mlp(32, "teacher", seed=10),
        student=student or _mlp(8, "student", seed=20),
        feature_distillation=hint,
    )
    distiller.compile(optimizer=keras.optimizers.SGD(lr), alpha=ALPHA,
                      temperature=TEMPERATURE)
    return distiller


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _dense(x, layer, relu=False):
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    z = x @ kernel + bias
    return np.maximum(z, 0.0) if relu else z


def _reference(distiller, x, y, weight, sample_weight=None):
    """Hard + soft + hint loss, in float64, from the layers' weights."""
    teacher, student = distiller.teacher, distiller.student
    t_hidden = _dense(x, teacher.get_layer("teacher_hidden"), relu=True)
    s_hidden = _dense(x, student.get_layer("student_hidden"), relu=True)
    t = _dense(t_hidden, teacher.get_layer("teacher_logit"))[:, 0]
    s = _dense(s_hidden, student.get_layer("student_logit"))[:, 0]
    w = np.ones(len(y)) if sample_weight is None else sample_weight
    hard = -(y * np.log(_sigmoid(s)) + (1 - y) * np.log(_sigmoid(-s)))
    p, q = _sigmoid(t / TEMPERATURE), _sigmoid(s / TEMPERATURE)
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    projected = _dense(s_hidden, distiller.feature_projection)
    # Mean over the 32 teacher features, then sum_i w[i] * l[i] / N.
    feature = np.mean((projected - t_hidden) ** 2, axis=-1)
    terms = {
        "student_loss": np.mean(w * hard),
        "distillation_loss": TEMPERATURE**2 * np.mean(w * kl),
        "feature_loss": np.mean(w * feature),
    }
    terms["loss"] = (ALPHA * terms["student_loss"]
                     + (1 - ALPHA) * terms["distillation_loss"]
                     + weight * terms["feature_loss"])
    return terms


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable)


class TestFeatureDistillationConfig:
    @pytest.mark.parametrize(
        "kwargs, error, fragment",
        [
            ({"weight": -0.1}, ValueError, "finite number >= 0"),
            ({"weight": float("nan")}, ValueError, "finite number >= 0"),
            ({"weight": float("inf")}, ValueError, "finite number >= 0"),
            ({"weight": "0.1"}, TypeError, "must be a number"),
            ({"weight": True}, TypeError, "must be a number"),
            ({"teacher_layer": ""}, ValueError, "non-empty layer name"),
            ({"student_layer": 3}, TypeError, "must be a layer name"),
            ({"loss": "cosine"}, ValueError, "`loss` must be one of"),
        ],
        ids=["negative", "nan", "inf", "str_weight", "bool_weight",
             "empty_name", "int_name", "unknown_loss"],
    )
    def test_bad_arguments(self, kwargs, error, fragment):
        args = {"teacher_layer": "t", "student_layer": "s", **kwargs}
        with pytest.raises(error, match=fragment):
            tfkd.FeatureDistillation(**args)

    def test_config_round_trip_through_json(self):
        hint = tfkd.FeatureDistillation("t", "s", weight=2)
        config = json.loads(
            json.dumps(keras.saving.serialize_keras_object(hint))
        )
        restored = keras.saving.deserialize_keras_object(config)
        assert isinstance(restored, tfkd.FeatureDistillation)
        assert restored.get_config() == {
            "teacher_layer": "t", "student_layer": "s", "weight": 2.0,
            "loss": "mse",
        }


class TestDistillerValidation:
    @pytest.mark.parametrize("role", ["teacher", "student"])
    def test_unknown_layer_lists_the_layers(self, role):
        with pytest.raises(ValueError, match=(
                f"The {role} '{role}' has no layer named 'nope'.*"
                f"{role}_hidden")):
            _distiller(_hint(**{f"{role}_layer": "nope"}))

    def test_subclassed_student_is_refused(self):
        class Subclassed(keras.Model):
            def __init__(self):
                super().__init__(name="subclassed")
                self.hidden = keras.layers.Dense(8, name="student_hidden")
                self.head = keras.layers.Dense(1)

            def call(self, x):
                return self.head(self.hidden(x))

        student = Subclassed()
        student(np.zeros((1, N_FEATURES), "float32"))
        with pytest.raises(ValueError, match="Functional or Sequential"):
            _distiller(_hint(), student=student)

    @pytest.mark.parametrize("source", ["ensemble", "cached"])
    def test_teacher_sources_are_refused(self, source):
        if source == "ensemble":
            teacher = tfkd.teachers.Ensemble(
                [_mlp(32, "teacher", 10), _mlp(32, "other", 12)]
            )
        else:
            teacher = tfkd.teachers.CachedLogits()
        with pytest.raises(ValueError, match="Use one teacher model for "
                           "feature distillation"):
            tfkd.Distiller(teacher, _mlp(8, "student", 20),
                           feature_distillation=_hint())

    def test_hint_must_be_a_feature_distillation(self):
        with pytest.raises(TypeError, match="tfkd.FeatureDistillation"):
            _distiller({"teacher_layer": "teacher_hidden"})


class TestFeatureLoss:
    @pytest.mark.parametrize("weighted", [False, True],
                             ids=["unweighted", "sample_weight"])
    def test_matches_numpy_reference(self, data, weighted):
        x, y = data
        distiller = _distiller(_hint(weight=0.5))
        sw = np.linspace(0.0, 2.0, ROWS) if weighted else None
        logs = distiller.evaluate(x, y, sample_weight=sw, batch_size=ROWS,
                                  return_dict=True, verbose=0)
        expected = _reference(distiller, x.astype("float64"), y, 0.5, sw)
        assert set(logs) == set(expected)
        for key, value in expected.items():
            assert logs[key] == pytest.approx(value, rel=1e-5), key

    def test_compute_loss_matches_evaluate(self, data):
        x, y = data
        distiller = _distiller(_hint(weight=0.5))
        loss = distiller.compute_loss(x, y, distiller(x), training=False)
        expected = _reference(distiller, x.astype("float64"), y, 0.5)
        assert float(loss) == pytest.approx(expected["loss"], rel=1e-5)

    def test_weight_zero_is_the_plain_distiller(self, data):
        x, y = data
        plain = _distiller(None)
        hinted = _distiller(_hint(weight=0.0))
        plain_logs = plain.evaluate(x, y, batch_size=ROWS, return_dict=True,
                                    verbose=0)
        hinted_logs = hinted.evaluate(x, y, batch_size=ROWS,
                                      return_dict=True, verbose=0)
        assert hinted_logs["feature_loss"] > 0.0
        assert hinted_logs["loss"] == plain_logs["loss"]
        assert "feature_loss" not in plain_logs

    def test_flattens_hidden_layers_of_rank_three(self):
        # Embeddings of shape (batch, 1, width): the hint compares the
        # flattened 1 * 32 teacher and 1 * 8 student features.
        teacher = _id_model("teacher", width=32, hidden=16)
        student = _id_model("student", width=8, hidden=4)
        hint = tfkd.FeatureDistillation("user_embedding", "user_embedding",
                                        weight=1.0)
        distiller = _distiller(hint, teacher, student)
        x = _id_features(ROWS)
        y = (x["user"][:, 0] % 2).astype("float32")
        logs = distiller.evaluate(x, y, batch_size=ROWS, return_dict=True,
                                  verbose=0)
        table = distiller.feature_projection
        t_emb = teacher.get_layer("user_embedding").get_weights()[0]
        s_emb = student.get_layer("user_embedding").get_weights()[0]
        ids = x["user"][:, 0]
        projected = _dense(s_emb[ids], table)
        expected = np.mean((projected - t_emb[ids]) ** 2)
        assert table.kernel.shape == (8, 32)
        assert logs["feature_loss"] == pytest.approx(expected, rel=1e-5)


class TestTraining:
    def test_step_trains_student_and_projection_not_teacher(self, data):
        x, y = data
        distiller = _distiller(_hint(weight=1.0))
        teacher_before = _weights(distiller.teacher)
        student_before = _weights(distiller.student)
        kernel_before = _numpy(distiller.feature_projection.kernel)
        distiller.fit(x, y, batch_size=ROWS, epochs=1, verbose=0)
        for before, after in zip(teacher_before, _weights(distiller.teacher),
                                 strict=True):
            np.testing.assert_array_equal(before, after)
        assert all(not np.array_equal(b, a) for b, a in zip(
            student_before, _weights(distiller.student), strict=True))
        assert not np.allclose(kernel_before,
                               _numpy(distiller.feature_projection.kernel))

    def test_hint_gradient_reaches_the_student(self, data):
        # Same initial weights, one SGD step: only the hint term differs,
        # so a different hidden kernel shows its gradient reached it.
        x, y = data
        kernels = []
        for weight in (0.0, 1.0):
            distiller = _distiller(_hint(weight=weight))
            distiller.fit(x, y, batch_size=ROWS, epochs=1, verbose=0)
            layer = distiller.student.get_layer("student_hidden")
            kernels.append(_numpy(layer.kernel))
        assert np.abs(kernels[0] - kernels[1]).max() > 1e-4

    def test_history_and_trainable_variables(self, data):
        x, y = data
        distiller = _distiller(_hint())
        history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0,
                                validation_data=(x, y))
        assert {"feature_loss", "val_feature_loss"} <= set(history.history)
        expected = [*distiller.student.trainable_variables,
                    *distiller.feature_projection.trainable_variables]
        assert {id(v) for v in distiller.trainable_variables} == {
            id(v) for v in expected}

    def test_student_stays_the_plain_student(self):
        student = _mlp(8, "student", seed=20)
        before = [w.path for w in student.weights]
        distiller = _distiller(_hint(), student=student)
        assert distiller.student is student
        assert [w.path for w in student.weights] == before
        assert len(student.outputs) == 1


class TestSerialization:
    def test_keras_file_round_trip(self, data, tmp_path):
        x, y = data
        distiller = _distiller(_hint(weight=0.25))
        distiller.compile(optimizer=keras.optimizers.Adam(0.01), alpha=ALPHA,
                          temperature=TEMPERATURE)
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
        path = tmp_path / "hinted.keras"
        distiller.save(path)
        restored = keras.models.load_model(path, safe_mode=True)
        assert restored.feature_distillation.get_config() == (
            distiller.feature_distillation.get_config())
        for a, b in zip(distiller.feature_projection.get_weights(),
                        restored.feature_projection.get_weights(),
                        strict=True):
            np.testing.assert_array_equal(a, b)
        expected = distiller.evaluate(x, y, return_dict=True, verbose=0)
        actual = restored.evaluate(x, y, return_dict=True, verbose=0)
        assert actual == pytest.approx(expected, rel=1e-6)
        # The optimizer is rebuilt with slots for the projection too, so
        # its saved state loads and training resumes from it.
        saved = [_numpy(v) for v in distiller.optimizer.variables]
        loaded = [_numpy(v) for v in restored.optimizer.variables]
        assert len(loaded) == len(saved) > 2
        for a, b in zip(saved, loaded, strict=True):
            np.testing.assert_array_equal(a, b)
        restored.fit(x, y, batch_size=16, epochs=1, verbose=0)


def _id_model(name, width, hidden):
    user = keras.Input((1,), name="user", dtype="int32")
    item = keras.Input((1,), name="item", dtype="int32")
    user_vec = keras.layers.Embedding(16, width, name="user_embedding")(user)
    item_vec = keras.layers.Embedding(16, width, name="item_embedding")(item)
    x = keras.layers.Concatenate()([keras.layers.Flatten()(user_vec),
                                    keras.layers.Flatten()(item_vec)])
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    return keras.Model({"user": user, "item": item},
                       keras.layers.Dense(1)(x), name=name)


def _id_features(rows, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "user": rng.integers(0, 16, size=(rows, 1)).astype("int32"),
        "item": rng.integers(0, 16, size=(rows, 1)).astype("int32"),
    }


class TestUserModel:
    def test_hand_built_embedding_model(self, tmp_path):
        # A user's own models: plain Embeddings, dict inputs, a Dense
        # hidden layer of width 8 (student) against width 32 (teacher).
        teacher = _id_model("teacher", width=16, hidden=32)
        # A trained teacher's activations, not an untrained one's near 0.
        rng = np.random.default_rng(1)
        teacher.set_weights([rng.normal(0.0, 0.5, w.shape).astype("float32")
                             for w in teacher.get_weights()])
        student = _id_model("student", width=4, hidden=8)
        hint = tfkd.FeatureDistillation("hidden", "hidden", weight=1.0)
        distiller = tfkd.Distiller(teacher, student, feature_distillation=hint)
        distiller.compile(optimizer=keras.optimizers.Adam(0.01))
        x = _id_features(256)
        x["unused"] = np.zeros((256, 1), "float32")
        y = (x["user"][:, 0] % 2).astype("float32")
        history = distiller.fit(x, y, batch_size=32, epochs=5, verbose=0)
        feature = history.history["feature_loss"]
        assert distiller.feature_projection.kernel.shape == (8, 32)
        assert feature[-1] < 0.7 * feature[0]
        report = tfkd.export.to_tflite(
            distiller.student, tmp_path / "student.tflite", latency_runs=1)
        assert report.max_abs_diff < 1e-4


@pytest.fixture(scope="module")
def jax_run():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run(
        [sys.executable, backend_worker.__file__, "feature"], env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # one JAX subprocess: 15-60 s on two shared cores
class TestJaxBackend:
    def test_trains_the_projection_and_student(self, jax_run):
        assert jax_run["backend"] == "jax"
        losses = jax_run["history"]["loss"]
        assert np.all(np.isfinite(losses))
        assert losses[-1] < losses[0]
        assert jax_run["after"]["loss"] < jax_run["before"]["loss"]
        assert not np.allclose(jax_run["kernel_before"],
                               jax_run["kernel_after"])
        for a, b in zip(jax_run["teacher_before"], jax_run["teacher_after"],
                        strict=True):
            np.testing.assert_array_equal(a, b)

    def test_matches_tensorflow(self, jax_run):
        # The same NumPy weights and data in this (TensorFlow) process: the
        # JAX step must differentiate the same loss w.r.t. the same
        # variables, projection included.
        tf_run = backend_worker.feature_run()
        for key in ("before", "after"):
            assert set(jax_run[key]) == {
                "loss", "student_loss", "distillation_loss", "feature_loss"}
            for name, value in tf_run[key].items():
                np.testing.assert_allclose(jax_run[key][name], value,
                                           rtol=1e-5)
        np.testing.assert_allclose(jax_run["kernel_after"],
                                   tf_run["kernel_after"], rtol=1e-4,
                                   atol=1e-6)
        for a, b in zip(tf_run["student_after"], jax_run["student_after"],
                        strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
