"""Tests for `tfkd.RetrievalDistiller` and its loss math, on synthetic data."""

import keras
import numpy as np
import pytest

from tests.retrieval_helpers import np_in_batch_kd
from tfkd import datasets
from tfkd import models
from tfkd.distillers import retrieval_losses
from tfkd.distillers.retrieval_distiller import RetrievalDistiller
from tfkd.distillers.retrieval_targets import RankingTargets
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.retrieval_export import IDS_OUTPUT
from tfkd.export.retrieval_export import to_tflite_retrieval

TOP_K = 5
NUM_NEGATIVES = 20


@pytest.fixture(scope="module")
def data():
    return datasets.synthetic_movielens(task="retrieval", seed=0)


@pytest.fixture(scope="module")
def counts(data):
    return np.bincount(
        data.frames["train"].item_id,
        minlength=data.spec["item_id"].vocabulary_size,
    )


@pytest.fixture(scope="module")
def teacher(data, counts):
    keras.utils.set_random_seed(0)
    model = models.two_tower(
        data.spec, embedding_dim=16, hidden=(16,), item_counts=counts
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(data.train, epochs=1, verbose=0)
    return model


@pytest.fixture
def student(data, counts):
    # Narrower towers than the teacher's: scores are compared, never
    # embeddings, so the output widths may differ.
    return models.two_tower(
        data.spec, embedding_dim=8, hidden=(8,), item_counts=counts
    )


@pytest.fixture(scope="module")
def batch(data):
    return datasets.features_from_frame(
        data.frames["train"].iloc[:32], data.spec
    )


def _ranking_compile(distiller, data, **kwargs):
    distiller.compile(
        optimizer="adam", method="ranking", top_k=TOP_K,
        num_negatives=NUM_NEGATIVES, candidates=data.items,
        users=data.users, seen=data.frames["train"], **kwargs,
    )


def _np_relaxed_ranking(ranked, negatives, weights):
    # -sum_k log(e^{s_k} / (sum_{l >= k} e^{s_l} + sum_j e^{n_j})), row mean.
    losses = []
    for s, n in zip(ranked, negatives, strict=True):
        n = n[n > retrieval_losses.MASK_LOGIT / 2]
        total = 0.0
        for k in range(len(s)):
            pool = np.concatenate([s[k:], n])
            total -= s[k] - np.log(np.exp(pool).sum())
        losses.append(total)
    weights = np.asarray(weights, float)
    return (np.array(losses) * weights).sum() / max(weights.sum(), 1.0)


def _np_logits(model, batch):
    users, items = (np.asarray(x, float) for x in model.embed(batch))
    return users @ items.T / model.temperature


class TestRetrievalLosses:
    @pytest.mark.parametrize("t", [1.0, 4.0], ids=["t1", "t4"])
    def test_in_batch_matches_numpy(self, t):
        rng = np.random.default_rng(0)
        teacher, student = rng.normal(0, 3, (2, 6, 6))
        value = retrieval_losses.in_batch_distillation_loss(
            teacher, student, t
        )
        np.testing.assert_allclose(
            float(value), np_in_batch_kd(teacher, student, t), rtol=1e-5
        )

    def test_in_batch_zero_for_equal_logits(self):
        logits = np.random.default_rng(1).normal(0, 3, (5, 5))
        value = retrieval_losses.in_batch_distillation_loss(
            logits, logits, 2.0
        )
        assert abs(float(value)) < 1e-6

    def test_relaxed_ranking_hand_example(self):
        # -(3 - log(e^3 + e + 1)) - (1 - log(e + 1)) = 0.48311
        value = retrieval_losses.relaxed_ranking_loss([[3.0, 1.0]], [[0.0]])
        np.testing.assert_allclose(float(value), 0.48311, atol=1e-5)

    def test_relaxed_ranking_matches_numpy(self):
        rng = np.random.default_rng(2)
        ranked, negatives = rng.normal(size=(4, 5)), rng.normal(size=(4, 7))
        negatives[1, 2] = retrieval_losses.MASK_LOGIT
        weights = [1.0, 1.0, 0.0, 1.0]
        value = retrieval_losses.relaxed_ranking_loss(
            ranked, negatives, np.array(weights)
        )
        np.testing.assert_allclose(
            float(value),
            _np_relaxed_ranking(ranked, negatives, weights),
            rtol=1e-5,
        )


class TestRetrievalDistiller:
    @pytest.mark.parametrize("t", [1.0, 3.0], ids=["t1", "t3"])
    def test_in_batch_loss_matches_numpy(self, teacher, student, batch, t):
        distiller = RetrievalDistiller(teacher, student)
        distiller.compile(alpha=0.3, temperature=t)
        loss = distiller.compute_losses(batch)
        logs = {m.name: float(m.result()) for m in distiller.metrics}
        expected = np_in_batch_kd(
            _np_logits(teacher, batch), _np_logits(student, batch), t
        )
        np.testing.assert_allclose(
            logs["distillation_loss"], expected, rtol=1e-4
        )
        own = float(student.in_batch_loss(batch))
        np.testing.assert_allclose(logs["student_loss"], own, rtol=1e-5)
        np.testing.assert_allclose(
            float(loss), 0.3 * own + 0.7 * expected, rtol=1e-4
        )

    @pytest.mark.parametrize("method", ["in_batch", "ranking"])
    def test_alpha_one_is_the_students_own_loss(
        self, teacher, student, batch, data, method
    ):
        distiller = RetrievalDistiller(teacher, student)
        if method == "ranking":
            _ranking_compile(distiller, data, alpha=1.0)
        else:
            distiller.compile(alpha=1.0)
        loss = distiller.compute_losses(batch)
        np.testing.assert_allclose(
            float(loss), float(student.in_batch_loss(batch)), rtol=1e-6
        )

    def test_copy_of_teacher_has_zero_distillation_loss(self, teacher, batch):
        copy = models.TwoTowerModel.from_config(teacher.get_config())
        copy.set_weights(teacher.get_weights())
        distiller = RetrievalDistiller(teacher, copy)
        distiller.compile(alpha=0.0, temperature=2.0)
        assert abs(float(distiller.compute_losses(batch))) < 1e-5

    def test_ranking_loss_matches_numpy(self, teacher, student, data, batch):
        distiller = RetrievalDistiller(teacher, student, seed=7)
        _ranking_compile(distiller, data, alpha=0.0, temperature=2.0)
        # The distiller's first draw, from a generator with the same seed.
        negative_rows = np.asarray(keras.random.randint(
            (NUM_NEGATIVES,), 0, len(data.items),
            seed=keras.random.SeedGenerator(7), dtype="int32",
        ))
        loss = float(distiller.compute_losses(batch))
        rows = distiller.targets.top_k_rows[batch["user_id"]]
        candidates = datasets.features_from_frame(
            data.items, data.spec, names=datasets.ITEM_FEATURES
        )
        users = np.asarray(student.user_model(
            {n: batch[n] for n in datasets.USER_FEATURES}
        ), float)
        items = np.asarray(student.item_model(candidates), float)
        scale = student.temperature * 2.0
        ranked = np.einsum("bd,bkd->bk", users, items[rows]) / scale
        negatives = users @ items[negative_rows].T / scale
        collides = (rows[:, None, :] == negative_rows[None, :, None]).any(-1)
        negatives[collides] = retrieval_losses.MASK_LOGIT
        expected = _np_relaxed_ranking(ranked, negatives, np.ones(len(rows)))
        np.testing.assert_allclose(loss, expected, rtol=1e-4)

    def test_teacher_top_k_matches_numpy(self, teacher, student, data):
        targets = RankingTargets.from_teacher(
            teacher, student, data.items, data.users, TOP_K,
            seen=data.frames["train"],
        )
        users = datasets.features_from_frame(
            data.users, data.spec, names=datasets.USER_FEATURES
        )
        items = datasets.features_from_frame(
            data.items, data.spec, names=datasets.ITEM_FEATURES
        )
        scores = np.asarray(teacher.score(users, items), float)
        row_of = {int(i): r for r, i in enumerate(items["item_id"])}
        user_row = {int(u): r for r, u in enumerate(users["user_id"])}
        train = data.frames["train"]
        for user, item in zip(train.user_id, train.item_id, strict=True):
            scores[user_row[int(user)], row_of[int(item)]] = -np.inf
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
        np.testing.assert_array_equal(
            targets.top_k_rows[users["user_id"]], expected
        )

    def test_fit_trains_student_not_teacher(self, teacher, student, data):
        before_teacher = [w.copy() for w in teacher.get_weights()]
        before_student = [w.copy() for w in student.get_weights()]
        distiller = RetrievalDistiller(teacher, student, seed=0)
        _ranking_compile(distiller, data)
        history = distiller.fit(
            data.train, validation_data=data.val, epochs=1, verbose=0
        )
        assert {"loss", "student_loss", "distillation_loss",
                "val_distillation_loss"} <= set(history.history)
        for old, new in zip(before_teacher, teacher.get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)
        assert any(not np.array_equal(old, new) for old, new
                   in zip(before_student, student.get_weights(),
                              strict=True))

    @pytest.mark.parametrize("method", ["in_batch", "ranking"])
    def test_save_load_round_trip(
        self, teacher, student, data, batch, method, tmp_path
    ):
        distiller = RetrievalDistiller(teacher, student, seed=3)
        if method == "ranking":
            _ranking_compile(distiller, data, alpha=0.2, temperature=1.5)
        else:
            distiller.compile(alpha=0.2, temperature=1.5)
        distiller.fit(data.train.take(2), epochs=1, verbose=0)
        path = tmp_path / "distiller.keras"
        distiller.save(path)
        restored = keras.models.load_model(path)
        assert isinstance(restored, RetrievalDistiller)
        assert (restored.alpha, restored.temperature, restored.method) == (
            0.2, 1.5, method
        )
        assert restored.teacher.trainable is False
        np.testing.assert_allclose(
            np.asarray(restored.student(batch)),
            np.asarray(distiller.student(batch)), rtol=1e-6,
        )
        if method == "ranking":
            np.testing.assert_array_equal(
                restored.targets.top_k_rows, distiller.targets.top_k_rows
            )
        # A restored distiller trains on.
        restored.fit(data.train.take(1), epochs=1, verbose=0)

    def test_distilled_student_exports_to_litert(
        self, teacher, student, data, tmp_path
    ):
        distiller = RetrievalDistiller(teacher, student)
        distiller.compile(alpha=0.5, temperature=2.0)
        distiller.fit(data.train, epochs=1, verbose=0)
        path = tmp_path / "student.tflite"
        report = to_tflite_retrieval(
            distiller.student, data.items, path, k=10, users=data.users,
            latency_runs=1,
        )
        assert report.recall_at_k >= 0.99
        users = datasets.features_from_frame(
            data.users.iloc[:4], data.spec, names=datasets.USER_FEATURES
        )
        ids = LiteRTRunner(path)(users)[IDS_OUTPUT]
        assert ids.shape == (4, 10)
        assert set(ids.ravel()) <= set(data.items.item_id)


class TestRetrievalDistillerValidation:
    def test_teacher_must_be_two_tower(self, student):
        plain = keras.Sequential([keras.layers.Dense(1)])
        with pytest.raises(TypeError, match="must be a tfkd.models"):
            RetrievalDistiller(plain, student)

    def test_same_model_in_both_roles(self, student):
        with pytest.raises(ValueError, match="same model object"):
            RetrievalDistiller(student, student)

    @pytest.mark.parametrize(
        "kwargs, fragment",
        [
            ({"alpha": 1.5}, "alpha"),
            ({"temperature": 0.01}, "temperature"),
            ({"method": "listwise"}, "`method` must be one of"),
            ({"top_k": 0}, "`top_k` must be >= 1"),
            ({"num_negatives": 0}, "`num_negatives` must be >= 1"),
            ({"loss": "mse"}, "does not take `loss`"),
            ({"method": "ranking"}, "pass `candidates`"),
        ],
        ids=["alpha", "temperature", "method", "top_k", "num_negatives",
             "loss", "ranking_without_candidates"],
    )
    def test_compile_rejects(self, teacher, student, kwargs, fragment):
        distiller = RetrievalDistiller(teacher, student)
        with pytest.raises(ValueError, match=fragment):
            distiller.compile(**kwargs)

    def test_top_k_above_catalogue(self, teacher, student, data):
        distiller = RetrievalDistiller(teacher, student)
        with pytest.raises(ValueError, match="number of candidates"):
            distiller.compile(method="ranking", top_k=10_000,
                              candidates=data.items, users=data.users)

    def test_data_without_a_tower_input_names_it(
        self, teacher, student, batch
    ):
        distiller = RetrievalDistiller(teacher, student)
        distiller.compile()
        features = {k: v for k, v in batch.items() if k != "genres"}
        with pytest.raises(ValueError, match="genres"):
            distiller.compute_losses(features)

    def test_losses_before_compile(self, teacher, student, batch):
        distiller = RetrievalDistiller(teacher, student)
        with pytest.raises(RuntimeError, match="compile"):
            distiller.compute_losses(batch)
