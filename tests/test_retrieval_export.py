"""Tests for `tfkd.export.to_tflite_retrieval` on synthetic data."""

import json
import os
import types

import keras
import numpy as np
import pandas as pd
import pytest
import retrieval_helpers

from tfkd import datasets
from tfkd.export import retrieval_export
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.retrieval_export import RetrievalMismatchError
from tfkd.export.retrieval_export import recall_at_k
from tfkd.export.retrieval_export import to_tflite_retrieval

K = 10


@pytest.fixture(scope="module")
def trained():
    return retrieval_helpers.trained_two_tower()


class TestToTfliteRetrieval:
    def test_float32_top_k_matches_keras(self, trained, tmp_path):
        data, model = trained
        path = tmp_path / "retrieval.tflite"
        report = to_tflite_retrieval(
            model, data.items, path, k=K, users=data.users, latency_runs=5
        )
        assert report.recall_at_k >= 0.99
        assert report.num_candidates == len(data.items)
        assert report.max_score_abs_diff < 1e-4
        runner = LiteRTRunner(path)
        assert runner.input_names == sorted(datasets.USER_FEATURES)
        users = datasets.features_from_frame(
            data.users, data.spec, names=datasets.USER_FEATURES
        )
        out = runner(users)
        ids = out[retrieval_export.IDS_OUTPUT]
        scores = out[retrieval_export.SCORES_OUTPUT]
        assert ids.dtype == np.int32 and ids.shape == (len(data.users), K)
        assert scores.dtype == np.float32 and scores.shape == ids.shape
        # Best first.
        assert np.all(np.diff(scores, axis=1) <= 0)
        expected = retrieval_helpers.keras_top_ids(model, data, users, K)
        overlap = np.mean(
            [
                len(set(a) & set(b)) / K
                for a, b in zip(expected, ids, strict=True)
            ]
        )
        assert overlap >= 0.99

    def test_sidecar_describes_the_file(self, trained, tmp_path):
        data, model = trained
        path = tmp_path / "retrieval.tflite"
        report = to_tflite_retrieval(
            model,
            data.items,
            path,
            k=5,
            users=data.users,
            feature_spec=data.spec,
            latency_runs=1,
        )
        with open(report.sidecar_path) as f:
            sidecar = json.load(f)
        assert sidecar["task"] == "retrieval"
        assert sidecar["k"] == 5
        assert [o["name"] for o in sidecar["outputs"]] == [
            "top_prediction_ids",
            "top_prediction_scores",
        ]
        assert sidecar["bytes"] == os.path.getsize(path)
        assert sidecar["metrics"]["recall_at_k"] == report.recall_at_k

    def test_float16_is_smaller_and_close(self, trained, tmp_path):
        data, model = trained
        float_report = to_tflite_retrieval(
            model,
            data.items,
            tmp_path / "f32.tflite",
            users=data.users,
            latency_runs=1,
        )
        half = to_tflite_retrieval(
            model,
            data.items,
            tmp_path / "f16.tflite",
            users=data.users,
            quantization="float16",
            latency_runs=1,
        )
        assert half.bytes < float_report.bytes
        assert half.recall_at_k >= 0.95

    def test_random_users_when_none_given(self, trained, tmp_path):
        data, model = trained
        report = to_tflite_retrieval(
            model, data.items, tmp_path / "r.tflite", latency_runs=1
        )
        assert report.num_users_checked == (
            retrieval_export.DEFAULT_NUM_CHECK_USERS
        )
        assert report.recall_at_k >= 0.99

    def test_refusal_writes_nothing(self, trained, tmp_path, monkeypatch):
        data, model = trained
        # Pretend LiteRT disagrees: a wrong answer must not be written.
        monkeypatch.setattr(
            retrieval_export, "recall_at_k", lambda *a, **k: 0.5
        )
        with pytest.raises(RetrievalMismatchError, match="recall_at_k=0.5"):
            to_tflite_retrieval(
                model,
                data.items,
                tmp_path / "r.tflite",
                users=data.users,
                latency_runs=1,
            )
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize(
        "kwargs, error, fragment",
        [
            ({"k": 0}, ValueError, "`k` must be >= 1"),
            ({"k": 10_000}, ValueError, "number of candidates"),
            ({"quantization": "int8"}, ValueError, "`quantization`"),
            ({"min_recall": 1.5}, ValueError, "`min_recall`"),
            ({"item_id_feature": "movie"}, ValueError, "'movie'"),
        ],
        ids=["k_zero", "k_too_big", "int8", "min_recall", "item_column"],
    )
    def test_bad_arguments(self, trained, tmp_path, kwargs, error, fragment):
        data, model = trained
        with pytest.raises(error, match=fragment):
            to_tflite_retrieval(
                model, data.items, tmp_path / "r.tflite", **kwargs
            )

    def test_not_a_two_tower(self, trained, tmp_path):
        data, _ = trained
        with pytest.raises(TypeError, match="user_model"):
            to_tflite_retrieval(object(), data.items, tmp_path / "r.tflite")

    def test_missing_candidate_column(self, trained, tmp_path):
        data, model = trained
        with pytest.raises(ValueError, match="genres"):
            to_tflite_retrieval(
                model,
                data.items.drop(columns="genres"),
                tmp_path / "r.tflite",
            )


class TestRecallAtK:
    def test_hand_computed(self):
        scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
        ids = np.array([7, 8, 9])
        # User 0: top-2 {7, 8}, predicted {7, 9} -> 1/2.
        # User 1: top-2 {9, 8}, predicted {9, 8} -> 2/2.
        predicted = np.array([[7, 9], [9, 8]])
        assert recall_at_k(scores, ids, predicted, k=2) == 0.75

    def test_tie_at_rank_k_counts_as_found(self):
        # 8 and 9 tie for rank 2 within 1e-5 (float round-off); predicting
        # either is correct. Without a tolerance only exact ties count.
        scores = np.array([[3.0, 2.0, 2.0 - 1e-6]])
        ids = np.array([7, 8, 9])
        predicted = np.array([[7, 9]])
        assert recall_at_k(scores, ids, predicted, k=2) == 0.5
        assert recall_at_k(scores, ids, predicted, k=2, tie_atol=1e-5) == 1.0
        exact = np.array([[3.0, 2.0, 2.0]])
        assert recall_at_k(exact, ids, predicted, k=2) == 1.0


NUM_ITEMS, NUM_USERS, AGES = 12, 9, 4


def _hand_built_towers(item_initializer=None):
    """Plain Embeddings; the user tower lists its inputs unsorted."""
    user_id = keras.Input((), dtype="int32", name="user_id")
    age = keras.Input((), dtype="int32", name="age_bucket")
    user_vector = keras.layers.Add()(
        [
            keras.layers.Embedding(
                NUM_USERS,
                3,
                embeddings_initializer=keras.initializers.RandomNormal(seed=1),
            )(user_id),
            keras.layers.Embedding(
                AGES,
                3,
                embeddings_initializer=keras.initializers.RandomNormal(seed=2),
            )(age),
        ]
    )
    item_id = keras.Input((), dtype="int32", name="item_id")
    item_vector = keras.layers.Embedding(
        NUM_ITEMS,
        3,
        embeddings_initializer=item_initializer
        or keras.initializers.RandomNormal(seed=3),
    )(item_id)
    return types.SimpleNamespace(
        user_model=keras.Model([user_id, age], user_vector),
        item_model=keras.Model({"item_id": item_id}, item_vector),
    )


def _items(ids):
    ids = np.asarray(ids)
    # A text column the towers do not read: it must not be converted.
    return pd.DataFrame({"title": [f"item {i}" for i in ids], "item_id": ids})


def _users():
    return pd.DataFrame(
        {
            "name": [f"user {u}" for u in range(NUM_USERS)],
            "age_bucket": np.arange(NUM_USERS) % AGES,
            "user_id": np.arange(NUM_USERS),
        }
    )


class TestHandBuiltTowers:
    def test_exports_and_maps_unknown_user_ids(self, tmp_path):
        towers = _hand_built_towers()
        report = to_tflite_retrieval(
            towers,
            _items(range(NUM_ITEMS)),
            tmp_path / "r.tflite",
            k=3,
            users=_users(),
            latency_runs=1,
        )
        assert report.recall_at_k == 1.0
        with open(report.sidecar_path) as f:
            unknown = json.load(f)["unknown_ids"]
        assert unknown["mapped_inputs"] == {
            "age_bucket": AGES,
            "user_id": NUM_USERS,
        }
        runner = LiteRTRunner(report.path)
        known = runner({"user_id": [0], "age_bucket": [1]})
        for bad in (-1, 2**31 - 1):
            unknown_user = runner({"user_id": [bad], "age_bucket": [1]})
            np.testing.assert_array_equal(
                unknown_user[retrieval_export.IDS_OUTPUT],
                known[retrieval_export.IDS_OUTPUT],
            )

    def test_duplicate_rows_are_listed_once(self, tmp_path):
        towers = _hand_built_towers()
        ids = list(range(NUM_ITEMS)) * 2
        report = to_tflite_retrieval(
            towers,
            _items(ids),
            tmp_path / "r.tflite",
            k=NUM_ITEMS,
            users=_users(),
            latency_runs=1,
        )
        assert report.num_candidates == NUM_ITEMS
        top = LiteRTRunner(report.path)(
            {
                "user_id": np.arange(NUM_USERS),
                "age_bucket": np.arange(NUM_USERS) % AGES,
            }
        )[retrieval_export.IDS_OUTPUT]
        for row in top:
            assert sorted(row.tolist()) == list(range(NUM_ITEMS))

    def test_refuses_one_id_with_different_features(self, tmp_path):
        items = pd.DataFrame({"item_id": [1, 2, 2], "release": [0, 3, 4]})
        towers = _hand_built_towers()
        item_id = keras.Input((), dtype="int32", name="item_id")
        release = keras.Input((), dtype="int32", name="release")
        towers.item_model = keras.Model(
            [item_id, release],
            keras.layers.Embedding(NUM_ITEMS, 3)(item_id)
            + keras.layers.Embedding(5, 3)(release),
        )
        with pytest.raises(ValueError, match="different features"):
            to_tflite_retrieval(towers, items, tmp_path / "r.tflite", k=1)
        assert os.listdir(tmp_path) == []

    def test_ties_never_repeat_an_item(self, tmp_path):
        # Every item has the same embedding: all scores tie, and top-K
        # must still return K different items.
        towers = _hand_built_towers(keras.initializers.Constant(0.5))
        report = to_tflite_retrieval(
            towers,
            _items(range(NUM_ITEMS)),
            tmp_path / "r.tflite",
            k=5,
            users=_users(),
            latency_runs=1,
        )
        top = LiteRTRunner(report.path)({"user_id": [3], "age_bucket": [2]})[
            retrieval_export.IDS_OUTPUT
        ][0]
        assert len(set(top.tolist())) == 5
        assert report.recall_at_k == 1.0

    def test_mixed_precision_towers(self, tmp_path):
        # Towers trained under mixed_float16 compute in float16; LiteRT
        # refuses float16 ADD, so the file is traced in float32.
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            towers = _hand_built_towers()
        finally:
            keras.config.set_dtype_policy(previous)
        report = to_tflite_retrieval(
            towers,
            _items(range(NUM_ITEMS)),
            tmp_path / "r.tflite",
            k=3,
            users=_users(),
            latency_runs=1,
        )
        assert report.recall_at_k == 1.0
        assert report.max_score_abs_diff < 1e-2
