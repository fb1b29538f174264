import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd

N_FEATURES = 6
BATCH = 16


def _mlp(units, hidden=8, name=None, activation=None, dropout=0.0, seed=0):
    inputs = keras.Input((N_FEATURES,), name="x")
    z = keras.layers.Dense(
        hidden,
        activation="relu",
        kernel_initializer=keras.initializers.GlorotUniform(seed),
    )(inputs)
    if dropout:
        z = keras.layers.Dropout(dropout)(z)
    outputs = keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed + 1),
    )(z)
    return keras.Model(inputs, outputs, name=name)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def binary_data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(128, N_FEATURES)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    return x, y


@pytest.fixture(scope="module")
def teacher(binary_data):
    x, y = binary_data
    model = _mlp(1, hidden=32, name="teacher", seed=10)
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    return model


def _compiled(teacher, student=None, **compile_kwargs):
    distiller = tfkd.Distiller(
        teacher=teacher, student=student or _mlp(1, name="student")
    )
    compile_kwargs.setdefault("optimizer", keras.optimizers.SGD(0.1))
    distiller.compile(**compile_kwargs)
    return distiller


class TestDistillerValidation:
    @pytest.mark.parametrize("temperature", [0.0, -1.0], ids=["zero", "neg"])
    def test_temperature_must_be_positive(self, teacher, temperature):
        with pytest.raises(ValueError, match="`temperature` must be"):
            _compiled(teacher, temperature=temperature)

    @pytest.mark.parametrize("alpha", [-0.1, 1.5], ids=["below", "above"])
    def test_alpha_must_be_in_unit_interval(self, teacher, alpha):
        with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
            _compiled(teacher, alpha=alpha)

    def test_output_shapes_must_match_at_construction(self, teacher):
        with pytest.raises(ValueError, match=r"student output shape=\(None, 3"):
            tfkd.Distiller(teacher=teacher, student=_mlp(3))

    def test_output_shapes_must_match_at_first_step(self, binary_data):
        class Subclassed(keras.Model):
            def __init__(self, units):
                super().__init__()
                self.dense = keras.layers.Dense(units)

            def call(self, x):
                return self.dense(x)

        x, y = binary_data
        distiller = tfkd.Distiller(
            teacher=Subclassed(1), student=Subclassed(2), kind="binary"
        )
        distiller.compile()
        with pytest.raises(ValueError, match="same shape"):
            distiller.fit(x, y, epochs=1, verbose=0)

    @pytest.mark.parametrize("role", ["teacher", "student"])
    @pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
    def test_probability_outputs_are_rejected(self, role, activation):
        models = {"teacher": _mlp(1), "student": _mlp(1)}
        models[role] = _mlp(1, activation=activation)
        with pytest.raises(ValueError, match=f"{role} must output logits"):
            tfkd.Distiller(**models)

    def test_softmax_layer_is_rejected(self):
        inputs = keras.Input((N_FEATURES,))
        outputs = keras.layers.Softmax()(keras.layers.Dense(3)(inputs))
        with pytest.raises(ValueError, match="applies softmax"):
            tfkd.Distiller(
                teacher=keras.Model(inputs, outputs), student=_mlp(3)
            )

    def test_unknown_kind(self):
        with pytest.raises(ValueError, match="`kind` must be one of"):
            tfkd.Distiller(teacher=_mlp(1), student=_mlp(1), kind="ctr")

    def test_teacher_must_be_a_model(self):
        with pytest.raises(TypeError, match="`teacher` must be a `keras"):
            tfkd.Distiller(teacher=lambda x: x, student=_mlp(1))

    def test_loss_argument_is_rejected(self, teacher):
        with pytest.raises(ValueError, match="not `loss`"):
            _compiled(teacher, loss="mse")

    def test_unknown_loss_name(self, teacher):
        with pytest.raises(ValueError, match="Unknown loss"):
            _compiled(teacher, distillation_loss_fn="no_such_loss")

    def test_nan_loss_stops_and_names_the_batch(self, teacher, binary_data):
        x, y = binary_data
        # NaN labels are refused before training (test_distiller_labels);
        # a NaN sample weight still reaches the loss.
        sw = np.ones_like(y)
        sw[40] = np.nan  # third batch of 16
        distiller = _compiled(teacher)
        with pytest.raises(FloatingPointError, match="epoch 1, batch 3"):
            distiller.fit(
                x, y, sample_weight=sw, batch_size=BATCH, epochs=1,
                verbose=0, shuffle=False,
            )

    def test_labels_are_required(self, teacher, binary_data):
        distiller = _compiled(teacher)
        with pytest.raises(ValueError, match="needs hard labels"):
            distiller.fit(binary_data[0], epochs=1, verbose=0)


class TestDistillerLossMath:
    """The reported losses equal a NumPy computation of the formula."""

    @pytest.mark.parametrize("weighted", [False, True], ids=["plain", "sw"])
    def test_binary(self, teacher, binary_data, weighted):
        x, y = binary_data
        student = _mlp(1, name="student")
        distiller = _compiled(teacher, student, alpha=0.3, temperature=2.0)
        sw = np.linspace(0.0, 2.0, len(y)).astype("float32")
        sw = sw if weighted else None
        result = distiller.evaluate(
            x, y, sample_weight=sw, batch_size=len(y), verbose=0,
            return_dict=True,
        )
        t = teacher.predict(x, verbose=0)[:, 0].astype(np.float64)
        s = student.predict(x, verbose=0)[:, 0].astype(np.float64)
        w = np.ones_like(y) if sw is None else sw
        # BCE from logits; Bernoulli KL at T = 2, scaled by T**2 = 4.
        bce = np.logaddexp(0, s) - y * s
        p, q = _sigmoid(t / 2), _sigmoid(s / 2)
        kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
        student_loss = np.sum(w * bce) / len(y)
        distill_loss = 4.0 * np.sum(w * kl) / len(y)
        assert result["student_loss"] == pytest.approx(student_loss, rel=1e-4)
        assert result["distillation_loss"] == pytest.approx(
            distill_loss, rel=1e-4
        )
        assert result["loss"] == pytest.approx(
            0.3 * student_loss + 0.7 * distill_loss, rel=1e-4
        )

    def test_categorical(self, binary_data):
        x, _ = binary_data
        y = (x[:, :3].argmax(1)).astype("int32")
        teacher, student = _mlp(3, seed=3), _mlp(3, seed=5)
        distiller = _compiled(teacher, student, alpha=0.5, temperature=3.0)
        result = distiller.evaluate(
            x, y, batch_size=len(y), verbose=0, return_dict=True
        )
        t = teacher.predict(x, verbose=0).astype(np.float64)
        s = student.predict(x, verbose=0).astype(np.float64)
        ce = -_log_softmax(s)[np.arange(len(y)), y].mean()
        lp, lq = _log_softmax(t / 3), _log_softmax(s / 3)
        kl = 9.0 * np.mean(np.sum(np.exp(lp) * (lp - lq), -1))
        assert result["student_loss"] == pytest.approx(ce, rel=1e-4)
        assert result["distillation_loss"] == pytest.approx(kl, rel=1e-4)

    def test_regression_ignores_temperature(self, binary_data):
        x, _ = binary_data
        y = x[:, 0] * 2.0 + 3.0
        teacher, student = _mlp(1, seed=3), _mlp(1, seed=5)
        distiller = tfkd.Distiller(teacher, student, kind="regression")
        distiller.compile(alpha=0.5, temperature=4.0)
        result = distiller.evaluate(
            x, y, batch_size=len(y), verbose=0, return_dict=True
        )
        t = teacher.predict(x, verbose=0)[:, 0]
        s = student.predict(x, verbose=0)[:, 0]
        assert result["student_loss"] == pytest.approx(
            np.mean((y - s) ** 2), rel=1e-4
        )
        assert result["distillation_loss"] == pytest.approx(
            np.mean((t - s) ** 2), rel=1e-4
        )

    def test_listwise(self, binary_data):
        x, _ = binary_data
        # Five candidates per list; relevance 1 on the first.
        y = np.zeros((len(x), 5), "float32")
        y[:, 0] = 1.0
        teacher, student = _mlp(5, seed=3), _mlp(5, seed=5)
        distiller = tfkd.Distiller(teacher, student, kind="listwise")
        distiller.compile(alpha=0.5, temperature=2.0)
        result = distiller.evaluate(
            x, y, batch_size=len(y), verbose=0, return_dict=True
        )
        s = student.predict(x, verbose=0).astype(np.float64)
        assert result["student_loss"] == pytest.approx(
            -_log_softmax(s)[:, 0].mean(), rel=1e-4
        )

    def test_recipe_losses_mean_the_same(self, binary_data):
        """String and object spellings of a Keras loss give one value, and it
        is the softmax KL that the keras.io recipe computes."""
        x, _ = binary_data
        y = x[:, :3].argmax(1)
        teacher, student = _mlp(3, seed=3), _mlp(3, seed=5)
        values = []
        for fn in ("kl_divergence", keras.losses.KLDivergence(), None):
            distiller = tfkd.Distiller(teacher=teacher, student=student)
            distiller.compile(distillation_loss_fn=fn, temperature=3.0)
            values.append(
                distiller.evaluate(
                    x, y, batch_size=len(y), verbose=0, return_dict=True
                )["distillation_loss"]
            )
        assert values[0] == pytest.approx(values[1], rel=1e-6)
        assert values[0] == pytest.approx(values[2], rel=1e-3)

    def test_keras_kl_on_binary_is_bernoulli(self, teacher, binary_data):
        x, y = binary_data
        student = _mlp(1)
        values = []
        for fn in (keras.losses.KLDivergence(), None):
            distiller = tfkd.Distiller(teacher=teacher, student=student)
            distiller.compile(distillation_loss_fn=fn)
            values.append(
                distiller.evaluate(
                    x, y, batch_size=len(y), verbose=0, return_dict=True
                )["distillation_loss"]
            )
        assert values[0] > 0.0
        assert values[0] == pytest.approx(values[1], rel=1e-3)


class TestDistillerTraining:
    def test_history_keys(self, teacher, binary_data):
        x, y = binary_data
        distiller = _compiled(
            teacher, metrics=[keras.metrics.AUC(from_logits=True, name="auc")]
        )
        history = distiller.fit(
            x, y, batch_size=BATCH, epochs=1, verbose=0,
            validation_data=(x, y),
        )
        for key in ("loss", "student_loss", "distillation_loss", "auc"):
            assert key in history.history
            assert "val_" + key in history.history

    def test_student_trains_and_teacher_is_frozen(self, teacher, binary_data):
        x, y = binary_data
        student = _mlp(1)
        distiller = _compiled(teacher, student)
        teacher_before = [w.numpy().copy() for w in teacher.weights]
        student_before = [w.numpy().copy() for w in student.weights]
        distiller.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
        for before, w in zip(teacher_before, teacher.weights, strict=True):
            np.testing.assert_array_equal(before, w.numpy())
        assert any(
            not np.array_equal(before, w.numpy())
            for before, w in zip(student_before, student.weights, strict=True)
        )
        assert {id(v) for v in distiller.trainable_variables} == {
            id(v) for v in student.trainable_variables
        }

    def test_dropout_teacher_gives_fixed_targets(self, binary_data):
        """A teacher called with training=True would draw a new dropout mask
        each step, so a frozen student (learning rate 0) would see a different
        distillation loss in fit and in evaluate."""
        x, y = binary_data
        teacher = _mlp(1, hidden=64, dropout=0.5, seed=4)
        distiller = _compiled(
            teacher, _mlp(1), optimizer=keras.optimizers.SGD(0.0), alpha=0.0
        )
        history = distiller.fit(x, y, batch_size=len(y), epochs=2, verbose=0)
        evaluated = distiller.evaluate(
            x, y, batch_size=len(y), verbose=0, return_dict=True
        )
        losses = history.history["distillation_loss"]
        assert losses[0] == pytest.approx(losses[1], rel=1e-6)
        assert losses[0] == pytest.approx(
            evaluated["distillation_loss"], rel=1e-5
        )

    def test_call_returns_student_logits(self, teacher, binary_data):
        x, _ = binary_data
        student = _mlp(1)
        distiller = _compiled(teacher, student)
        np.testing.assert_allclose(
            distiller.predict(x, verbose=0), student.predict(x, verbose=0)
        )

    def test_distillation_moves_student_to_teacher(self, teacher, binary_data):
        x, y = binary_data
        student = _mlp(1)
        gap_before = _probability_gap(teacher, student, x)
        distiller = _compiled(
            teacher, student, optimizer=keras.optimizers.Adam(0.02), alpha=0.0
        )
        distiller.fit(x, y, batch_size=BATCH, epochs=15, verbose=0)
        assert _probability_gap(teacher, student, x) < 0.5 * gap_before

    def test_schedules_change_alpha_and_temperature(self, teacher, binary_data):
        x, y = binary_data
        distiller = _compiled(teacher)
        history = distiller.fit(
            x, y, batch_size=BATCH, epochs=2, verbose=0,
            callbacks=[
                tfkd.callbacks.TemperatureScheduler(lambda e, t: 4.0 - e),
                tfkd.callbacks.AlphaScheduler(lambda e, a: 0.25 * (e + 1)),
            ],
        )
        assert history.history["temperature"] == [4.0, 3.0]
        assert history.history["alpha"] == [0.25, 0.5]
        assert distiller.temperature == 3.0

    def test_scheduler_rejects_bad_values(self, teacher, binary_data):
        x, y = binary_data
        distiller = _compiled(teacher)
        with pytest.raises(ValueError, match="`temperature` must be"):
            distiller.fit(
                x, y, epochs=1, verbose=0,
                callbacks=[tfkd.callbacks.TemperatureScheduler(lambda e, t: 0)],
            )


def _probability_gap(teacher, student, x):
    t = _sigmoid(teacher.predict(x, verbose=0))
    s = _sigmoid(student.predict(x, verbose=0))
    return float(np.mean(np.abs(t - s)))


class TestKerasDistillationComparison:
    """Keras' own `keras.distillation` (3.15) on a one-logit CTR head.

    Its `LogitsDistillation` applies a softmax over the last axis; with one
    logit that is always 1, the KL is 0 and no gradient reaches the student.
    """

    def test_ours_transfers_where_keras_does_not(self, teacher, binary_data):
        x, y = binary_data
        results = {}
        for name in ("keras", "tfkd"):
            student = _mlp(1, seed=21)
            before = _probability_gap(teacher, student, x)
            if name == "keras":
                distiller = keras.distillation.Distiller(
                    teacher=teacher,
                    student=student,
                    distillation_losses=keras.distillation.LogitsDistillation(
                        temperature=3.0, loss=keras.losses.KLDivergence()
                    ),
                    student_loss_weight=0.0,
                )
                distiller.compile(
                    optimizer=keras.optimizers.Adam(0.02),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True),
                )
            else:
                distiller = _compiled(
                    teacher, student, alpha=0.0,
                    optimizer=keras.optimizers.Adam(0.02),
                )
            history = distiller.fit(x, y, batch_size=BATCH, epochs=10,
                                    verbose=0)
            results[name] = (before, _probability_gap(teacher, student, x),
                             history.history["distillation_loss"])
        keras_before, keras_after, keras_losses = results["keras"]
        ours_before, ours_after, ours_losses = results["tfkd"]
        # Keras' KL of a softmax over one logit is 0 in every epoch. Its
        # gradient is float rounding (about 1e-7), which Adam divides by
        # its own scale (epsilon 1e-7) into steps of up to lr / 2: on some
        # builds the student drifts, never toward the teacher.
        assert max(keras_losses) < 1e-6
        assert keras_after > 0.9 * keras_before
        assert min(ours_losses) > 1e-3
        assert ours_after < 0.5 * ours_before

    def test_keras_default_string_loss_is_not_the_kl(self):
        # One 3-logit example at T = 3. The true softmax KL, times T**2, is
        # what the recipe and tfkd compute; keras' default "kl_divergence"
        # string gets temperature-scaled *logits*, clipped to [eps, 1].
        t = np.array([[2.0, 0.5, -1.0]], "float32")
        s = np.array([[0.0, 1.0, 0.5]], "float32")
        theirs = float(
            keras.distillation.LogitsDistillation(temperature=3.0)
            .compute_loss(t, s)
        )
        ours = 9.0 * float(tfkd.losses.CategoricalKLDivergence()(t / 3, s / 3))
        lp, lq = _log_softmax(t / 3.0), _log_softmax(s / 3.0)
        reference = 9.0 * float(np.sum(np.exp(lp) * (lp - lq)))
        assert ours == pytest.approx(reference, rel=1e-5)
        assert abs(theirs - reference) > 0.1


class TestDistillerSerialization:
    def test_keras_file_round_trip(self, teacher, binary_data, tmp_path):
        x, y = binary_data
        distiller = _compiled(
            teacher,
            optimizer=keras.optimizers.Adam(0.01),
            alpha=0.25,
            temperature=2.5,
            distillation_loss_fn=keras.losses.KLDivergence(),
            metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
        )
        distiller.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        path = tmp_path / "d.keras"
        distiller.save(path)
        restored = keras.models.load_model(path, safe_mode=True)
        assert isinstance(restored, tfkd.Distiller)
        assert restored.alpha == 0.25
        assert restored.temperature == 2.5
        assert isinstance(
            restored.distillation_loss_fn, keras.losses.KLDivergence
        )
        np.testing.assert_allclose(
            restored.predict(x, verbose=0), distiller.predict(x, verbose=0)
        )
        expected = distiller.evaluate(x, y, verbose=0, return_dict=True)
        actual = restored.evaluate(x, y, verbose=0, return_dict=True)
        for key in ("loss", "student_loss", "distillation_loss", "auc"):
            assert actual[key] == pytest.approx(expected[key], rel=1e-5)
        # The optimizer state comes back too, so training resumes where it
        # stopped (Keras silently skips it when the model is not built).
        saved_slots = [v.numpy() for v in distiller.optimizer.variables]
        restored_slots = [v.numpy() for v in restored.optimizer.variables]
        assert len(restored_slots) == len(saved_slots) > 2
        for a, b in zip(restored_slots, saved_slots, strict=True):
            np.testing.assert_array_equal(a, b)
        restored.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    def test_config_round_trip_through_json(self, teacher):
        distiller = tfkd.Distiller(teacher=teacher, student=_mlp(1),
                                   kind="binary")
        config = json.loads(
            json.dumps(keras.saving.serialize_keras_object(distiller))
        )
        restored = keras.saving.deserialize_keras_object(config)
        assert restored.kind == "binary"
        assert restored.teacher.name == teacher.name
        assert restored.teacher.trainable is False


class TestDistillerUnderMirroredStrategy:
    """Two logical CPU devices (see conftest): per-replica losses are reduced
    over the global batch, so training matches the run without a strategy."""

    def _train(self, x, y, sw, strategy=None):
        scope = strategy.scope() if strategy else _null_scope()
        with scope:
            teacher = _mlp(1, hidden=16, seed=31)
            student = _mlp(1, seed=41)
            distiller = tfkd.Distiller(teacher=teacher, student=student)
            distiller.compile(
                optimizer=keras.optimizers.SGD(0.5), alpha=0.3, temperature=2.0
            )
        ds = tf.data.Dataset.from_tensor_slices((x, y, sw)).batch(BATCH)
        history = distiller.fit(ds, epochs=2, verbose=0)
        return history.history, [w.numpy() for w in student.weights]

    def test_matches_single_device(self, binary_data):
        x, y = binary_data
        sw = np.linspace(0.5, 1.5, len(y)).astype("float32")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        plain_history, plain_weights = self._train(x, y, sw)
        dist_history, dist_weights = self._train(x, y, sw, strategy)
        for key in ("loss", "student_loss", "distillation_loss"):
            np.testing.assert_allclose(
                dist_history[key], plain_history[key], rtol=1e-5
            )
        for a, b in zip(dist_weights, plain_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
