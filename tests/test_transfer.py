"""Transfer sets: per-term sample weights in the Distiller, unobserved
pairs with their side features, and the one-call mixed dataset (issue 13).
"""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd
from tfkd.datasets import transfer

LN2 = math.log(2.0)
LN3 = math.log(3.0)
# Bernoulli KL(sigmoid(ln 3) || sigmoid(0)) = KL(0.75 || 0.5)
#   = 0.75 ln(0.75 / 0.5) + 0.25 ln(0.25 / 0.5) = 0.130812
KL_075 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def _passthrough(name):
    """logit = the input `name`: a Dense(1) with kernel 1 and bias 0."""
    x = keras.Input((1,), name=name)
    out = keras.layers.Dense(1, kernel_initializer="ones",
                             bias_initializer="zeros")(x)
    return keras.Model(x, out, name=f"model_{name}")


def _logit_distiller(metrics=None, alpha=0.5):
    """Teacher logits read from "t", student logits from "s", T = 1."""
    distiller = tfkd.Distiller(_passthrough("t"), _passthrough("s"))
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=alpha,
                      temperature=1.0, metrics=metrics)
    return distiller


def _column(values):
    return np.asarray(values, "float32").reshape(-1, 1)


@pytest.fixture
def four_rows():
    # Student logit 0 everywhere: BCE = ln 2 whatever the label. Teacher
    # logits 0 and ln 3: KL to the student 0 and KL_075.
    x = {"s": _column([0, 0, 0, 0]), "t": _column([0, LN3, 0, LN3])}
    y = np.array([1, 0, 1, 0], "float32")
    return x, y


def _evaluate(distiller, x, y, sample_weight):
    return distiller.evaluate(x, y, sample_weight=sample_weight,
                              batch_size=len(y), verbose=0, return_dict=True)


class TestDictSampleWeight:
    def test_each_term_gets_its_own_weight(self, four_rows):
        x, y = four_rows
        weights = {"student": np.array([1, 1, 0, 0], "float32"),
                   "distillation": np.array([0, 1, 1, 1], "float32")}
        logs = _evaluate(_logit_distiller(), x, y, weights)
        # N = 4 rows, weight-0 rows included:
        # student (1 + 1) ln 2 / 4; distillation (KL_075 + 0 + KL_075) / 4.
        assert logs["student_loss"] == pytest.approx(2 * LN2 / 4, rel=1e-5)
        assert logs["distillation_loss"] == pytest.approx(2 * KL_075 / 4,
                                                          rel=1e-5)
        assert logs["loss"] == pytest.approx(
            0.5 * 2 * LN2 / 4 + 0.5 * 2 * KL_075 / 4, rel=1e-5)

    def test_one_array_weights_both_terms(self, four_rows):
        x, y = four_rows
        logs = _evaluate(_logit_distiller(), x, y,
                         np.array([1, 1, 0, 0], "float32"))
        assert logs["student_loss"] == pytest.approx(2 * LN2 / 4, rel=1e-5)
        assert logs["distillation_loss"] == pytest.approx(KL_075 / 4,
                                                          rel=1e-5)

    @pytest.mark.parametrize("key", ["student", "distillation"])
    def test_missing_key_means_ones(self, four_rows, key):
        x, y = four_rows
        zeros = np.zeros(4, "float32")
        logs = _evaluate(_logit_distiller(), x, y, {key: zeros})
        other = ("distillation_loss" if key == "student" else "student_loss")
        full = {"student_loss": LN2, "distillation_loss": 2 * KL_075 / 4}
        assert logs[f"{key}_loss"] == 0.0
        assert logs[other] == pytest.approx(full[other], rel=1e-5)

    def test_unknown_key_is_refused(self, four_rows):
        x, y = four_rows
        with pytest.raises(ValueError, match=r"Received keys: \['teacher'\]"):
            _evaluate(_logit_distiller(), x, y,
                      {"teacher": np.ones(4, "float32")})

    def test_transfer_row_moves_the_soft_term_only(self):
        # Rows 0-1 labelled (student logits 1 and 2, labels 0 and 1); row 2
        # is a transfer row (hard weight 0) whose placeholder label and
        # teacher logit change between the two runs.
        weights = {"student": np.array([1, 1, 0], "float32")}
        logs = []
        for t_row, label in ((LN3, 0.0), (0.0, 1.0)):
            x = {"s": _column([1, 2, 3]), "t": _column([1, 2, t_row])}
            y = np.array([0, 1, label], "float32")
            auc = keras.metrics.AUC(from_logits=True, name="auc")
            logs.append(_evaluate(_logit_distiller([auc]), x, y, weights))
        assert logs[0]["student_loss"] == logs[1]["student_loss"]
        assert logs[0]["auc"] == logs[1]["auc"]
        # Counted, row 2 (logit 3, label 0) would rank above the positive.
        assert logs[0]["auc"] == pytest.approx(1.0, abs=1e-3)
        assert logs[0]["distillation_loss"] != pytest.approx(
            logs[1]["distillation_loss"], rel=1e-3)

    def test_metrics_count_labelled_rows_weighted_metrics_weigh_them(self):
        # Squared errors of logits 1, 3, 5 to labels 0, 1, 0: 1, 4, 25.
        x = {"s": _column([1, 3, 5]), "t": _column([0, 0, 0])}
        y = np.array([0, 1, 0], "float32")
        distiller = tfkd.Distiller(_passthrough("t"), _passthrough("s"))
        distiller.compile(
            metrics=[keras.metrics.MeanSquaredError(name="mse")],
            weighted_metrics=[keras.metrics.MeanSquaredError(name="wmse")])
        hard = np.array([3, 1, 0], "float32")
        logs = _evaluate(distiller, x, y, {"student": hard})
        assert logs["mse"] == pytest.approx((1 + 4) / 2)  # rows 0 and 1
        assert logs["wmse"] == pytest.approx((3 * 1 + 1 * 4) / 4)
        # A plain array keeps Keras' meaning: `metrics` take no weight.
        logs = _evaluate(distiller, x, y, hard)
        assert logs["mse"] == pytest.approx((1 + 4 + 25) / 3)
        assert logs["wmse"] == pytest.approx((3 * 1 + 1 * 4) / 4)

    def test_numpy_and_dataset_train_alike(self, four_rows):
        x, y = four_rows
        x = {"s": x["s"] + _column([0.5, -1, 2, 0]), "t": x["t"]}
        weights = {"student": np.array([1, 1, 0, 0], "float32"),
                   "distillation": np.array([1, 0, 1, 1], "float32")}
        trained = []
        for packed in ("numpy", "dataset"):
            distiller = _logit_distiller()
            if packed == "numpy":
                distiller.fit(x, y, sample_weight=weights, batch_size=2,
                              epochs=2, shuffle=False, verbose=0)
            else:
                ds = tf.data.Dataset.from_tensor_slices((x, y, weights))
                distiller.fit(ds.batch(2), epochs=2, verbose=0)
            trained.append(distiller.student.get_weights())
        for a, b in zip(*trained, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        assert not np.allclose(trained[0][0], 1.0)

    @pytest.mark.parametrize("packed", ["numpy", "dataset"])
    def test_label_check_skips_rows_of_hard_weight_zero(self, four_rows,
                                                        packed):
        x, y = four_rows
        y = np.array([1, 0, 7, 7], "float32")  # 7: not a binary label
        for hard, ok in (([1, 1, 0, 0], True), ([1, 1, 1, 0], False)):
            weights = {"student": np.array(hard, "float32")}
            if packed == "numpy":
                data = {"x": x, "y": y, "sample_weight": weights}
            else:
                ds = tf.data.Dataset.from_tensor_slices((x, y, weights))
                data = {"x": ds.batch(4)}
            if ok:
                _logit_distiller().fit(**data, epochs=1, verbose=0)
            else:
                with pytest.raises(ValueError, match="labels are not"):
                    _logit_distiller().fit(**data, epochs=1, verbose=0)

    def test_mirrored_strategy_matches_single_device(self, four_rows):
        x, y = four_rows
        weights = {"student": np.array([1, 1, 0, 0], "float32"),
                   "distillation": np.array([0, 1, 1, 1], "float32")}
        ds = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(4)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            mirrored = _logit_distiller()
        plain = mirrored.evaluate(ds, verbose=0, return_dict=True)
        single = _logit_distiller().evaluate(ds, verbose=0, return_dict=True)
        for key in ("student_loss", "distillation_loss", "loss"):
            assert plain[key] == pytest.approx(single[key], rel=1e-5)


@pytest.fixture(scope="module")
def data():
    return tfkd.datasets.synthetic_movielens(
        num_users=30, num_items=40, num_ratings=400, seed=0, batch_size=32)


def _pairs(frame):
    return set(
        zip(frame["user_id"].tolist(), frame["item_id"].tolist(), strict=True)
    )


def _ctr_model(spec, name, seed):
    """A user's model: plain Embeddings of user, item and genres, MLP."""
    inputs = {
        n: keras.Input((), dtype="int32", name=n)
        for n in ("user_id", "item_id")
    }
    inputs["genres"] = keras.Input((6,), dtype="int32", name="genres")
    init = keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    parts = [
        keras.layers.Embedding(
            spec[n].vocabulary_size, 4, embeddings_initializer=init
        )(inputs[n])
        for n in ("user_id", "item_id")
    ]
    genres = keras.layers.Embedding(
        spec["genres"].vocabulary_size, 4, embeddings_initializer=init
    )
    parts.append(keras.ops.mean(genres(inputs["genres"]), axis=1))
    x = keras.layers.Dense(8, activation="relu")(
        keras.layers.Concatenate()(parts)
    )
    return keras.Model(inputs, keras.layers.Dense(1)(x), name=name)


class TestTransferSet:
    @pytest.mark.parametrize("sampling", transfer.SAMPLING)
    def test_pairs_are_unobserved_and_distinct(self, data, sampling):
        rows = tfkd.datasets.transfer_set(data, size=1.5, sampling=sampling)
        observed = set().union(*(_pairs(f) for f in data.frames.values()))
        drawn = list(zip(rows["user_id"], rows["item_id"], strict=True))
        assert not set(drawn) & observed
        assert len(set(drawn)) == len(drawn)

    @pytest.mark.parametrize("size", [0.5, 2.0])
    def test_size_is_a_multiple_of_the_training_rows(self, data, size):
        rows = tfkd.datasets.transfer_set(data, size=size)
        assert len(rows) == round(size * len(data.frames["train"]))

    def test_side_features_match_the_tables(self, data):
        rows = tfkd.datasets.transfer_set(data, size=1.0)
        users = data.users.set_index("user_id")
        items = data.items.set_index("item_id")
        for name in ("age_bucket", "gender", "occupation"):
            np.testing.assert_array_equal(
                rows[name], users.loc[rows["user_id"], name]
            )
        np.testing.assert_array_equal(
            rows["release_year_bucket"],
            items.loc[rows["item_id"], "release_year_bucket"],
        )
        np.testing.assert_array_equal(
            np.stack(rows["genres"]),
            np.stack(items.loc[rows["item_id"], "genres"]),
        )
        assert set(data.spec.names) <= set(rows.columns)
        assert (rows["label"] == 0.0).all()

    def test_same_seed_same_rows(self, data):
        first, again, other = (
            tfkd.datasets.transfer_set(data, size=1.0, seed=s)
            for s in (3, 3, 4)
        )
        assert _pairs(first) == _pairs(again)
        assert list(first["user_id"]) == list(again["user_id"])
        assert _pairs(first) != _pairs(other)

    def test_popularity_never_draws_what_training_lacks(self, data):
        # Item 1 keeps its table row but loses its training rows.
        train = data.frames["train"]
        without = dataclasses.replace(
            data, frames={**data.frames, "train": train[train["item_id"] != 1]}
        )
        popular = tfkd.datasets.transfer_set(without, size=1.0, seed=0)
        uniform = tfkd.datasets.transfer_set(
            without, size=1.0, seed=0, sampling="uniform"
        )
        assert 1 not in set(popular["item_id"])
        assert 1 in set(uniform["item_id"])

    def test_teacher_logits_are_the_teachers(self, data):
        teacher = _ctr_model(data.spec, "teacher", seed=1)
        rows = tfkd.datasets.transfer_set(data, teacher, size=0.5)
        features = tfkd.datasets.features_from_frame(rows, data.spec)
        expected = teacher.predict(
            {k: features[k] for k in ("user_id", "item_id", "genres")},
            verbose=0,
        )
        np.testing.assert_allclose(
            np.stack(rows["teacher_logits"]), expected, rtol=1e-5, atol=1e-6
        )

    @pytest.mark.parametrize(
        "kwargs, error, fragment",
        [
            ({"size": 0.0}, ValueError, "`size` must be a finite number"),
            ({"size": float("nan")}, ValueError, "`size` must be a finite"),
            ({"size": "5"}, TypeError, "`size` must be a number"),
            ({"size": 3.0}, ValueError, "distinct unobserved pairs, but"),
            ({"sampling": "random"}, ValueError, "`sampling` must be one"),
        ],
        ids=["zero", "nan", "str", "too_many", "sampling"],
    )
    def test_bad_arguments(self, data, kwargs, error, fragment):
        # 30 users x 40 items = 1,200 pairs, 400 of them rated: 800 left,
        # fewer than 3.0 x the training rows.
        with pytest.raises(error, match=fragment):
            tfkd.datasets.transfer_set(data, **kwargs)

    def test_draws_that_keep_repeating_are_refused(self, data, monkeypatch):
        monkeypatch.setattr(transfer, "MAX_ROUNDS", 1)
        with pytest.raises(ValueError, match="keep repeating"):
            tfkd.datasets.transfer_set(data, size=2.4)

    def test_data_without_side_tables_is_refused(self, data):
        empty = dataclasses.replace(
            data, users=data.users.iloc[:0, :0], items=data.items.iloc[:0, :0]
        )
        with pytest.raises(ValueError, match="no such tables"):
            tfkd.datasets.transfer_set(empty)

    def test_retrieval_is_refused(self):
        data = tfkd.datasets.synthetic_movielens(
            num_users=20, num_items=30, num_ratings=200, task="retrieval"
        )
        with pytest.raises(ValueError, match="pointwise tasks"):
            tfkd.datasets.transfer_set(data)


class TestWithTransferSet:
    def _rows(self, dataset):
        columns = [list(c) for c in zip(*dataset.unbatch(), strict=True)]
        features = {
            k: np.stack([f[k] for f in columns[0]]) for k in columns[0][0]
        }
        weights = {
            k: np.array([w[k] for w in columns[2]]) for k in columns[2][0]
        }
        return features, np.array(columns[1]), weights

    def test_labelled_and_transfer_rows_weighted_and_mixed(self, data):
        ds = tfkd.datasets.with_transfer_set(data, size=2.0, batch_size=64)
        features, labels, weights = self._rows(ds)
        train = data.frames["train"]
        assert len(labels) == 3 * len(train)
        hard = weights["student"] == 1.0
        assert hard.sum() == len(train)
        assert set(np.unique(weights["student"])) == {0.0, 1.0}
        assert (weights["distillation"] == 1.0).all()
        assert (labels[~hard] == 0.0).all()
        assert labels[hard].sum() == train["label"].sum()
        pairs = set(
            zip(
                features["user_id"][hard],
                features["item_id"][hard],
                strict=True,
            )
        )
        assert pairs == _pairs(train)
        # Shuffled together: the first batch holds both kinds of rows.
        first = next(iter(ds))[2]["student"].numpy()
        assert 0 < first.sum() < len(first)

    def test_teacher_scores_every_row(self, data):
        teacher = _ctr_model(data.spec, "teacher", seed=1)
        ds = tfkd.datasets.with_transfer_set(data, teacher, size=1.0)
        features, _, _ = self._rows(ds)
        inputs = {k: features[k] for k in ("user_id", "item_id", "genres")}
        np.testing.assert_allclose(
            features["teacher_logits"],
            teacher.predict(inputs, verbose=0),
            rtol=1e-5,
            atol=1e-6,
        )

    def test_fit_trains_the_student_and_not_the_teacher(self, data):
        teacher = _ctr_model(data.spec, "teacher", seed=1)
        student = _ctr_model(data.spec, "student", seed=2)
        frozen = [w.copy() for w in teacher.get_weights()]
        start = [w.copy() for w in student.get_weights()]
        distiller = tfkd.Distiller(teacher, student)
        distiller.compile(
            optimizer="adam",
            alpha=0.2,
            temperature=2.0,
            metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
        )
        train = tfkd.datasets.with_transfer_set(data, size=2.0, batch_size=32)
        history = distiller.fit(
            train, validation_data=data.val, epochs=2, verbose=0
        )
        assert {"auc", "val_auc", "distillation_loss"} <= set(history.history)
        for a, b in zip(teacher.get_weights(), frozen, strict=True):
            np.testing.assert_array_equal(a, b)
        assert any(
            not np.allclose(a, b)
            for a, b in zip(student.get_weights(), start, strict=True)
        )

    def test_batch_size_must_be_positive(self, data):
        with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
            tfkd.datasets.with_transfer_set(data, batch_size=0)
