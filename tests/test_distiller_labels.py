"""Labels checked against the output kind on the first batch.

Issue 11: with `kind="auto"` and one output, ratings 1..5 trained as
binary cross-entropy and the loss went negative, with no error anywhere.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd

N, FEATURES = 64, 6


def _model(units=1, seed=0):
    inputs = keras.Input((FEATURES,), name="x")
    z = keras.layers.Dense(
        8, "relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(inputs)
    outputs = keras.layers.Dense(
        units, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)
    )(z)
    return keras.Model(inputs, outputs)


def _distiller(units=1, kind="auto", **compile_kwargs):
    distiller = tfkd.Distiller(_model(units, 1), _model(units, 3), kind=kind)
    distiller.compile(keras.optimizers.SGD(0.05), **compile_kwargs)
    return distiller


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(N, FEATURES)).astype(
        "float32"
    )


@pytest.fixture(scope="module")
def ratings():
    return np.random.default_rng(1).integers(1, 6, N).astype("float32")


class TestBinaryLabels:
    def test_ratings_on_one_output_are_refused(self, x, ratings):
        with pytest.raises(ValueError, match=r"look like ratings.*"
                           r"kind=\"regression\".*in \[1, 5\]"):
            _distiller().fit(x, ratings, epochs=1, verbose=0)

    def test_ratings_in_a_dataset_are_refused(self, x, ratings):
        ds = tf.data.Dataset.from_tensor_slices((x, ratings)).batch(16)
        with pytest.raises(ValueError, match="training labels are not"):
            _distiller().fit(ds, epochs=1, verbose=0)

    def test_evaluate_refuses_ratings(self, x, ratings):
        with pytest.raises(ValueError, match="evaluation labels are not"):
            _distiller().evaluate(x, ratings, verbose=0)

    @pytest.mark.parametrize("packed", ["tuple", "dataset"])
    def test_validation_labels_are_checked(self, x, ratings, packed):
        clicks = (ratings >= 4).astype("float32")
        val = (x, ratings)
        if packed == "dataset":
            val = tf.data.Dataset.from_tensor_slices(val).batch(16)
        with pytest.raises(ValueError, match="validation labels are not"):
            _distiller().fit(x, clicks, validation_data=val, epochs=1,
                             verbose=0)

    def test_checked_once_per_call_not_per_epoch(self, x, ratings,
                                                 monkeypatch):
        seen = []
        check = tfkd.distillers.labels.check_labels

        def counting(labels, *args, **kwargs):
            seen.append(kwargs.get("where", args[-1] if args else None))
            return check(labels, *args, **kwargs)

        monkeypatch.setattr(tfkd.distillers.labels, "check_labels", counting)
        clicks = (ratings >= 4).astype("float32")
        _distiller().fit(x, clicks, validation_data=(x, clicks), epochs=3,
                         batch_size=16, verbose=0)
        assert seen == ["training", "validation"]

    def test_plus_minus_one_labels(self, x):
        signs = np.where(x[:, 0] > 0, 1.0, -1.0).astype("float32")
        with pytest.raises(ValueError, match=r"\{-1, 1\} to \{0, 1\}"):
            _distiller().fit(x, signs, epochs=1, verbose=0)

    def test_clicks_and_soft_labels_train(self, x, ratings):
        # Binarized ratings, and a soft label (a click rate) in [0, 1].
        for labels in ((ratings >= 4), (ratings - 1) / 4):
            history = _distiller().fit(
                x, labels.astype("float32"), epochs=1, verbose=0
            )
            assert history.history["student_loss"][0] > 0.0

    def test_subclassed_student_is_resolved_first(self, x, ratings):
        """A subclassed student declares no output shape: `auto` is
        resolved by running it once before the labels are checked."""

        class Scorer(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(1)

            def call(self, inputs):
                return self.dense(inputs)

        distiller = tfkd.Distiller(_model(1), Scorer())
        distiller.compile()
        with pytest.raises(ValueError, match="look like ratings"):
            distiller.fit(x, ratings, epochs=1, verbose=0)


class TestNonFiniteLabels:
    @pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
    @pytest.mark.parametrize("kind", ["binary", "regression"])
    def test_refused_for_every_kind(self, x, ratings, value, kind):
        labels = (ratings >= 4).astype("float32")
        labels[5] = value
        with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\) "
                           r"out of 64.*at flat index 5"):
            _distiller(kind=kind).fit(x, labels, epochs=1, verbose=0)


class TestRegressionLabels:
    def test_ratings_train_as_regression(self, x, ratings):
        distiller = _distiller(kind="regression")
        history = distiller.fit(x, ratings, epochs=1, verbose=0)
        # MSE on ratings 1..5 from outputs near 0 is around 11.
        assert history.history["student_loss"][0] > 1.0


class TestCategoricalLabels:
    @pytest.fixture
    def ids(self, x):
        return np.argmax(x[:, :3], axis=1).astype("int32")

    def test_ids_train(self, x, ids):
        history = _distiller(3).fit(x, ids, epochs=1, verbose=0)
        assert history.history["student_loss"][0] > 0.0

    def test_id_out_of_range(self, x, ids):
        ids = ids.copy()
        ids[0] = 7
        with pytest.raises(ValueError, match=r"ids in \[0, 3\)\. Give both "
                           r"models 8 outputs"):
            _distiller(3).fit(x, ids, epochs=1, verbose=0)

    def test_one_based_ids(self, x, ids):
        with pytest.raises(ValueError, match="look 1-based"):
            _distiller(3).fit(x, ids + 1, epochs=1, verbose=0)

    def test_fractional_ids(self, x, ids):
        with pytest.raises(ValueError, match="whole class ids"):
            _distiller(3).fit(x, ids + 0.5, epochs=1, verbose=0)

    def test_one_hot_with_sparse_default_loss(self, x, ids):
        one_hot = keras.utils.to_categorical(ids, 3)
        with pytest.raises(ValueError, match=r"rows of width 3 \(one-hot"
                           r"\?\).*CategoricalCrossentropy"):
            _distiller(3).fit(x, one_hot, epochs=1, verbose=0)

    def test_one_hot_with_categorical_loss(self, x, ids):
        """One-hot labels with the Keras loss made for them give the same
        student loss as class ids with the default sparse loss."""
        one_hot = keras.utils.to_categorical(ids, 3)
        dense = _distiller(
            3, student_loss_fn=keras.losses.CategoricalCrossentropy(
                from_logits=True
            )
        )
        sparse = _distiller(3)
        a = dense.evaluate(x, one_hot, verbose=0, return_dict=True)
        b = sparse.evaluate(x, ids, verbose=0, return_dict=True)
        assert a["student_loss"] == pytest.approx(b["student_loss"], rel=1e-5)
        dense.fit(x, one_hot, epochs=1, verbose=0)

    def test_ids_with_categorical_loss(self, x, ids):
        distiller = _distiller(
            3, student_loss_fn=keras.losses.CategoricalCrossentropy(
                from_logits=True
            )
        )
        with pytest.raises(ValueError, match=r"takes one-hot rows.*"
                           r"to_categorical\(y, 3\)"):
            distiller.fit(x, ids, epochs=1, verbose=0)

    def test_rows_must_be_distributions(self, x, ids):
        rows = keras.utils.to_categorical(ids, 3) * 2.0
        distiller = _distiller(
            3, student_loss_fn=keras.losses.CategoricalCrossentropy(
                from_logits=True
            )
        )
        with pytest.raises(ValueError, match="sum to 1"):
            distiller.fit(x, rows, epochs=1, verbose=0)


class TestLogitLosses:
    """Models output logits: a cross-entropy must say `from_logits=True`."""

    @pytest.mark.parametrize(
        "loss",
        ["binary_crossentropy", keras.losses.BinaryCrossentropy()],
        ids=["string", "object"],
    )
    def test_student_loss_on_probabilities(self, loss):
        distiller = tfkd.Distiller(_model(), _model())
        with pytest.raises(ValueError, match="must use `from_logits=True`"):
            distiller.compile(student_loss_fn=loss)

    def test_distillation_loss_on_logits(self):
        distiller = tfkd.Distiller(_model(), _model())
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        with pytest.raises(ValueError, match="must use `from_logits=False`"):
            distiller.compile(distillation_loss_fn=loss)
