"""The Distiller on hand-built models: inputs by name, heads, misuse.

Issue 11: a student reading fewer dict features than its teacher embedded
the wrong column (Keras matches a dict with extra keys by position), a
sigmoid applied with `keras.ops` slipped past the logits check, and a
temperature of 1e-30 was accepted and made the distillation loss 0.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd

VOCAB = {"user": 30, "item": 30, "genre": 5}
DENSE_FEATURES = 6


def _features(n, seed):
    rng = np.random.default_rng(seed)
    return {
        name: rng.integers(0, size, (n, 1)).astype("int32")
        for name, size in VOCAB.items()
    }


def _clicks(features):
    # Depends on the item alone: even items are clicked.
    return (features["item"][:, 0] % 2 == 0).astype("float32")


def _embedding_model(names, name, as_dict=True, seed=0):
    """A user's model: one plain Embedding per named int input."""
    inputs = {n: keras.Input((1,), name=n, dtype="int32") for n in names}
    embedded = [
        keras.layers.Flatten()(
            keras.layers.Embedding(
                VOCAB[n], 4,
                embeddings_initializer=keras.initializers.RandomUniform(
                    -0.05, 0.05, seed=seed + i
                ),
            )(inputs[n])
        )
        for i, n in enumerate(names)
    ]
    z = embedded[0] if len(embedded) == 1 else (
        keras.layers.Concatenate()(embedded)
    )
    z = keras.layers.Dense(
        8, "relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(z)
    outputs = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)
    )(z)
    declared = inputs if as_dict else list(inputs.values())
    return keras.Model(declared, outputs, name=name)


def _dense_model(units=1, name=None, seed=0):
    inputs = keras.Input((DENSE_FEATURES,))
    z = keras.layers.Dense(
        8, "relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(inputs)
    return keras.Model(inputs, keras.layers.Dense(units)(z), name=name)


def _auc(model, features, labels):
    metric = keras.metrics.AUC(from_logits=True)
    metric.update_state(labels, model.predict(features, verbose=0))
    return float(metric.result())


@pytest.fixture(scope="module")
def click_teacher():
    features = _features(1024, seed=1)
    teacher = _embedding_model(["user", "item", "genre"], "teacher", seed=10)
    teacher.compile(
        keras.optimizers.Adam(0.05),
        keras.losses.BinaryCrossentropy(from_logits=True),
    )
    teacher.fit(features, _clicks(features), batch_size=64, epochs=8,
                verbose=0)
    return teacher


class TestInputsByName:
    def test_student_on_fewer_features_learns_its_column(self, click_teacher):
        """The student reads {item} of {user, item, genre}. Fed by position
        it embedded `genre` and scored AUC 0.5; fed by name it learns the
        item parity the labels depend on."""
        train, test = _features(1024, seed=1), _features(512, seed=2)
        assert _auc(click_teacher, test, _clicks(test)) > 0.95
        student = _embedding_model(["item"], "student", seed=20)
        distiller = tfkd.Distiller(teacher=click_teacher, student=student)
        distiller.compile(keras.optimizers.Adam(0.05), alpha=0.5,
                          temperature=2.0)
        ds = tf.data.Dataset.from_tensor_slices((train, _clicks(train)))
        distiller.fit(ds.batch(64), epochs=8, verbose=0)
        item_only = {"item": test["item"]}
        assert _auc(student, item_only, _clicks(test)) > 0.95

    @pytest.mark.parametrize("as_dict", [True, False], ids=["dict", "list"])
    def test_each_model_gets_its_own_columns(self, click_teacher, as_dict):
        # Declared as (user, item): not the dict's sorted order.
        student = _embedding_model(["user", "item"], "student",
                                   as_dict=as_dict, seed=30)
        distiller = tfkd.Distiller(teacher=click_teacher, student=student)
        distiller.compile(alpha=0.5)
        features = _features(64, seed=3)
        own = {"user": features["user"], "item": features["item"]}
        if not as_dict:
            own = [own["user"], own["item"]]
        np.testing.assert_allclose(
            distiller.predict(features, verbose=0),
            student.predict(own, verbose=0),
            rtol=1e-6,
        )
        result = distiller.evaluate(
            features, _clicks(features), verbose=0, return_dict=True
        )
        assert np.isfinite(result["distillation_loss"])

    @pytest.mark.parametrize("missing", ["genre", "item"])
    def test_missing_feature_names_the_model(self, click_teacher, missing):
        role = "teacher" if missing == "genre" else "student"
        student = _embedding_model(["item"], "student")
        features = _features(32, seed=4)
        labels = _clicks(features)
        del features[missing]
        distiller = tfkd.Distiller(teacher=click_teacher, student=student)
        distiller.compile()
        pattern = rf"{role} '{role}' takes inputs .* no \['{missing}'\]"
        with pytest.raises(ValueError, match=pattern):
            distiller.fit(features, labels, epochs=1, verbose=0)


def _sigmoid_op():
    inputs = keras.Input((DENSE_FEATURES,))
    logits = keras.layers.Dense(1, name="head")(inputs)
    return keras.Model(inputs, keras.ops.sigmoid(logits))


def _softmax_op():
    inputs = keras.Input((DENSE_FEATURES,))
    logits = keras.layers.Dense(3, name="head")(inputs)
    return keras.Model(inputs, keras.ops.softmax(logits))


def _activation_layer():
    inputs = keras.Input((DENSE_FEATURES,))
    logits = keras.layers.Dense(1)(inputs)
    probability = keras.layers.Activation("sigmoid", name="prob")(logits)
    return keras.Model(inputs, probability)


def _reshape_after_sigmoid():
    inputs = keras.Input((DENSE_FEATURES,))
    z = keras.layers.Dense(1, activation="sigmoid", name="head")(inputs)
    return keras.Model(inputs, keras.layers.Reshape((1,))(z))


def _nested_softmax():
    inner_inputs = keras.Input((DENSE_FEATURES,))
    inner = keras.Model(
        inner_inputs,
        keras.layers.Dense(3, activation="softmax")(inner_inputs),
        name="tower",
    )
    inputs = keras.Input((DENSE_FEATURES,))
    return keras.Model(inputs, inner(inputs))


class TestProbabilityHeads:
    @pytest.mark.parametrize(
        "build, activation, source",
        [
            (_sigmoid_op, "sigmoid", "op 'sigmoid"),
            (_softmax_op, "softmax", "op 'softmax"),
            (_activation_layer, "sigmoid", "layer 'prob'"),
            (_reshape_after_sigmoid, "sigmoid", "layer 'head'"),
            (_nested_softmax, "softmax", "nested model 'tower'"),
        ],
        ids=["ops_sigmoid", "ops_softmax", "activation_layer",
             "reshape_after_sigmoid", "nested_softmax"],
    )
    @pytest.mark.parametrize("role", ["teacher", "student"])
    def test_refused_with_layer_and_fix(self, build, activation, source,
                                        role):
        model = build()
        width = model.outputs[0].shape[-1]
        models = {r: _dense_model(width) for r in ("teacher", "student")}
        models[role] = model
        with pytest.raises(ValueError) as info:
            tfkd.Distiller(**models)
        message = str(info.value)
        assert f"{role} must output logits" in message
        assert f"applies {activation} ({source}" in message
        assert "Remove that activation" in message

    def test_inner_sigmoid_is_not_a_head(self):
        # A sigmoid gate inside the network, with a linear head, is logits.
        inputs = keras.Input((DENSE_FEATURES,))
        z = keras.layers.Dense(8, activation="sigmoid")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(z))
        distiller = tfkd.Distiller(teacher=model, student=_dense_model())
        assert distiller.kind == "auto"


class TestMisuse:
    @pytest.mark.parametrize("temperature", [1e-30, 0.049], ids=["1e-30",
                                                                 "0.049"])
    def test_temperature_below_minimum(self, temperature):
        distiller = tfkd.Distiller(_dense_model(), _dense_model())
        with pytest.raises(ValueError, match=r"must be a finite number >= "):
            distiller.compile(temperature=temperature)
        with pytest.raises(ValueError, match="`temperature` must be"):
            distiller.temperature = temperature

    def test_minimum_temperature_is_accepted(self):
        distiller = tfkd.Distiller(_dense_model(), _dense_model())
        distiller.compile(temperature=tfkd.distillers.distiller.MIN_TEMPERATURE)
        assert distiller.temperature == 0.05

    def test_why_tiny_temperatures_are_refused(self):
        # Teacher logit 1 (p = 0.73), student -1 (p = 0.27): the Bernoulli
        # KL is 0.46 at T = 1. At T = 1e-30 the T**2-scaled loss is 0 in
        # float32, and below MIN_TEMPERATURE float32 rounds the teacher's
        # soft target sigmoid(1 / T) to exactly 1: a hard label.
        loss = tfkd.losses.BinaryKLDivergence()
        t, s = np.array([[1.0]], "float32"), np.array([[-1.0]], "float32")
        assert float(loss(t, s)) == pytest.approx(0.4621, abs=1e-4)
        tiny = np.float32(1e-30)
        assert float(loss(t / tiny, s / tiny)) * tiny**2 == 0.0
        below = np.float32(0.049)
        assert float(keras.ops.sigmoid(t / below)[0, 0]) == 1.0

    @pytest.mark.parametrize("kind", ["listwise", "categorical"])
    def test_softmax_kind_over_one_column(self, kind):
        with pytest.raises(ValueError, match="softmax over one value"):
            tfkd.Distiller(_dense_model(1), _dense_model(1), kind=kind)

    def test_same_model_as_teacher_and_student(self):
        model = _dense_model(name="ranker")
        with pytest.raises(ValueError, match="same model object"):
            tfkd.Distiller(teacher=model, student=model)


@pytest.fixture
def dense_data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, DENSE_FEATURES)).astype("float32")
    return x, (x[:, 0] > 0).astype("float32")


class TestFrozenTeacher:
    def test_shared_teacher_stays_frozen(self, dense_data):
        x, y = dense_data
        teacher = _dense_model(name="shared", seed=3)
        before = [w.numpy().copy() for w in teacher.weights]
        for seed in (5, 7):
            distiller = tfkd.Distiller(teacher, _dense_model(seed=seed))
            distiller.compile(keras.optimizers.SGD(0.1))
            distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
            assert teacher.trainable is False
        for b, w in zip(before, teacher.weights, strict=True):
            np.testing.assert_array_equal(b, w.numpy())

    def test_unfrozen_teacher_is_refused(self, dense_data):
        x, y = dense_data
        teacher = _dense_model(name="ranker")
        distiller = tfkd.Distiller(teacher, _dense_model())
        distiller.compile()
        teacher.trainable = True  # e.g. to fine-tune it on its own
        with pytest.raises(ValueError, match="'ranker' is trainable again"):
            distiller.fit(x, y, epochs=1, verbose=0)
        teacher.trainable = False
        distiller.fit(x, y, epochs=1, verbose=0)

    def test_student_reused_as_teacher_is_refused(self, dense_data):
        """Progressive distillation: the first student becomes the second
        Distiller's teacher, which freezes it; training the first Distiller
        again would then change nothing."""
        x, y = dense_data
        student = _dense_model(name="middle")
        first = tfkd.Distiller(_dense_model(), student)
        first.compile()
        tfkd.Distiller(teacher=student, student=_dense_model())
        with pytest.raises(ValueError, match="'middle' has no trainable"):
            first.fit(x, y, epochs=1, verbose=0)
