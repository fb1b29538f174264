import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd.models import embedding_utils
from tfkd.models import feature_embedding


@pytest.fixture(scope="module")
def ctr_data():
    return datasets.synthetic_movielens(task="ctr")


@pytest.fixture(scope="module")
def retrieval_data():
    return datasets.synthetic_movielens(task="retrieval")


@pytest.fixture(scope="module")
def batch(ctr_data):
    return datasets.features_from_frame(
        ctr_data.frames["test"].iloc[:8], ctr_data.spec
    )


@pytest.fixture(scope="module")
def trained_two_tower(retrieval_data):
    keras.utils.set_random_seed(0)
    counts = np.bincount(
        retrieval_data.frames["train"].item_id,
        minlength=retrieval_data.spec["item_id"].vocabulary_size,
    )
    model = models.two_tower(
        retrieval_data.spec, embedding_dim=16, item_counts=counts
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(
        retrieval_data.train, epochs=2, verbose=0, shuffle=False
    )
    return model, history


class TestIdMappingAndPooling:
    """The math `FeatureEmbedding` (and its tf_keras twin) is built on."""

    def test_safe_ids_maps_out_of_range_to_zero(self):
        ids = np.array([-1, 0, 3, 4, 5], dtype=np.int32)
        out = feature_embedding.safe_ids(ids, 5)
        np.testing.assert_array_equal(np.asarray(out), [0, 0, 3, 4, 0])

    def test_safe_ids_per_column_vocabulary(self):
        ids = np.array([[-1, 2], [7, 3]], dtype=np.int32)
        out = feature_embedding.safe_ids(ids, np.array([5, 3]))
        np.testing.assert_array_equal(np.asarray(out), [[0, 2], [0, 0]])

    def test_masked_mean_averages_non_padding(self):
        embeddings = np.array(
            [[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]], np.float32
        )
        ids = np.array([[4, 2, 0]], np.int32)
        # Position 2 is padding: mean of [1, 1] and [3, 5] = [2, 3].
        out = feature_embedding.masked_mean(embeddings, ids)
        np.testing.assert_allclose(np.asarray(out), [[2.0, 3.0]])

    def test_masked_mean_of_padding_only_is_zero(self):
        embeddings = np.ones((1, 3, 2), np.float32)
        ids = np.zeros((1, 3), np.int32)
        out = feature_embedding.masked_mean(embeddings, ids)
        np.testing.assert_allclose(np.asarray(out), [[0.0, 0.0]])


def _constant_tables(layer):
    # Row r of feature k holds [10 * k + r, -(10 * k + r)]: every value
    # names its feature and row, so the expected outputs below can be read
    # off by hand.
    for k, f in enumerate(layer.features):
        rows = 10.0 * k + np.arange(f.vocabulary_size, dtype=np.float32)
        layer.table(f.name).assign(np.stack([rows, -rows], axis=1))


class TestFeatureEmbedding:
    FEATURES = (
        datasets.Feature("user", 4),
        datasets.Feature("tags", 5, length=3),
        datasets.Feature("city", 3),
    )

    def _layer(self, features=FEATURES):
        layer = models.FeatureEmbedding(features, 2)
        layer(
            {
                f.name: np.zeros((1, f.length) if f.length > 1 else (1,),
                                 np.int32)
                for f in features
            }
        )
        _constant_tables(layer)
        return layer

    def test_reads_rows_and_pools_lists_in_feature_order(self):
        layer = self._layer()
        out = layer(
            {
                "user": np.array([3], np.int32),
                "tags": np.array([[2, 4, 0]], np.int32),
                "city": np.array([1], np.int32),
            }
        )
        # user row 3 -> [3, -3]; tags rows 2 and 4 of feature 1 -> 12, 14,
        # mean 13 (the 0 is padding); city row 1 of feature 2 -> 21.
        np.testing.assert_allclose(
            np.asarray(out), [[3.0, -3.0, 13.0, -13.0, 21.0, -21.0]]
        )

    def test_out_of_range_ids_read_row_zero(self):
        layer = self._layer()
        out = layer(
            {
                "user": np.array([-1, 4], np.int32),
                "tags": np.array([[7, -2, 1], [0, 0, 0]], np.int32),
                "city": np.array([3, 2**31 - 1], np.int32),
            }
        )
        # user and city: row 0 (0 and 20). tags: 7 and -2 become 0, i.e.
        # padding, so the first row pools row 1 alone (11) and the second,
        # all padding, pools to zeros.
        np.testing.assert_allclose(
            np.asarray(out),
            [
                [0.0, -0.0, 11.0, -11.0, 20.0, -20.0],
                [0.0, -0.0, 0.0, 0.0, 20.0, -20.0],
            ],
        )

    @pytest.mark.parametrize(
        "features",
        [
            (datasets.Feature("a", 4), datasets.Feature("b", 3)),
            (
                datasets.Feature("a", 4, length=2),
                datasets.Feature("b", 3, length=3),
            ),
            (datasets.Feature("a", 4),),
            (datasets.Feature("a", 4, length=2),),
        ],
        ids=["scalars_only", "two_lists", "one_scalar", "one_list"],
    )
    def test_any_mix_of_scalar_and_list_features(self, features):
        layer = self._layer(features)
        ids = {
            f.name: np.array(
                [[1, 2] + [0] * (f.length - 2)] if f.length > 1 else [1],
                np.int32,
            )
            for f in features
        }
        # Row 1 of feature k is 10 k + 1; a list [1, 2, pad...] pools to
        # 10 k + 1.5.
        expected = []
        for k, f in enumerate(features):
            value = 10 * k + (1.5 if f.length > 1 else 1.0)
            expected += [value, -value]
        np.testing.assert_allclose(np.asarray(layer(ids)), [expected])

    def test_one_named_table_per_feature(self):
        layer = self._layer()
        assert [w.path for w in layer.weights] == [
            f"{layer.name}/user_embeddings",
            f"{layer.name}/tags_embeddings",
            f"{layer.name}/city_embeddings",
        ]
        assert layer.vocabulary_sizes == {"user": 4, "tags": 5, "city": 3}
        with pytest.raises(KeyError, match="Available: \\['user'"):
            layer.table("age")

    def test_config_round_trip_through_json(self):
        layer = models.FeatureEmbedding(
            self.FEATURES, 3, embeddings_initializer="zeros", name="emb"
        )
        config = json.loads(json.dumps(layer.get_config()))
        restored = models.FeatureEmbedding.from_config(config)
        assert restored.features == self.FEATURES
        assert restored.embedding_dim == 3
        assert restored.name == "emb"
        assert isinstance(
            restored.embeddings_initializer, keras.initializers.Zeros
        )

    def test_model_save_load_outputs_equal(self, tmp_path):
        inputs = embedding_utils.feature_inputs(self.FEATURES)
        model = keras.Model(
            inputs, models.FeatureEmbedding(self.FEATURES, 2)(inputs)
        )
        ids = {
            "user": np.array([1, 3], np.int32),
            "tags": np.array([[1, 2, 0], [4, 0, 0]], np.int32),
            "city": np.array([2, 0], np.int32),
        }
        model.save(tmp_path / "m.keras")
        restored = keras.models.load_model(tmp_path / "m.keras")
        np.testing.assert_array_equal(
            np.asarray(restored(ids)), np.asarray(model(ids))
        )

    @pytest.mark.parametrize(
        "features, dim, error, match",
        [
            ((), 2, TypeError, "non-empty sequence"),
            ("user", 2, TypeError, "non-empty sequence"),
            ((("user", 4),), 2, TypeError, "Received: an item of type tuple"),
            (
                (datasets.Feature("a", 4), datasets.Feature("a", 3)),
                2,
                ValueError,
                "unique. Received: names=\\['a', 'a'\\]",
            ),
            (FEATURES, 0, ValueError, "Received: embedding_dim=0"),
            (FEATURES, True, TypeError, "Received: embedding_dim=True"),
        ],
        ids=["empty", "string", "tuple_item", "duplicate", "zero_dim",
             "bool_dim"],
    )
    def test_rejects_bad_arguments(self, features, dim, error, match):
        with pytest.raises(error, match=match):
            models.FeatureEmbedding(features, dim)

    def test_rejects_missing_input(self):
        inputs = embedding_utils.feature_inputs(self.FEATURES[:2])
        with pytest.raises(ValueError, match="Expected a dict of the inputs"):
            models.FeatureEmbedding(self.FEATURES, 2)(inputs)

    def test_rejects_list_of_wrong_length(self):
        inputs = embedding_utils.feature_inputs(self.FEATURES)
        inputs["tags"] = keras.Input(shape=(4,), dtype="int32", name="tags")
        with pytest.raises(ValueError, match="'tags' of shape \\(batch, "
                           "length\\) with length=3. Received: shape"):
            models.FeatureEmbedding(self.FEATURES, 2)(inputs)


class TestRankingModel:
    def test_inputs_named_int32_and_output_is_one_logit(self, ctr_data, batch):
        model = models.ranking_model(ctr_data.spec, cross_layers=1)
        assert {t.name: t.dtype for t in model.inputs} == {
            name: "int32" for name in ctr_data.spec.names
        }
        assert model.get_layer("genres").output.shape == (None, 6)
        assert model(batch).shape == (8, 1)

    def test_out_of_range_ids_score_as_unknown(self, ctr_data, batch):
        model = models.ranking_model(ctr_data.spec)
        unknown = {k: np.zeros_like(v) for k, v in batch.items()}
        wild = {k: np.full_like(v, -7) for k, v in batch.items()}
        wild["user_id"] = np.full_like(batch["user_id"], 10**6)
        np.testing.assert_allclose(
            np.asarray(model(wild)), np.asarray(model(unknown))
        )

    def test_save_load_outputs_equal(self, ctr_data, batch, tmp_path):
        model = models.ranking_model(ctr_data.spec, cross_layers=2)
        path = tmp_path / "ranking.keras"
        model.save(path)
        restored = keras.models.load_model(path, safe_mode=True)
        np.testing.assert_allclose(
            np.asarray(restored(batch)), np.asarray(model(batch)), rtol=1e-6
        )

    def test_learns_synthetic_ctr(self, ctr_data):
        keras.utils.set_random_seed(0)
        model = models.ranking_model(ctr_data.spec)
        model.compile(
            keras.optimizers.Adam(0.01),
            keras.losses.BinaryCrossentropy(from_logits=True),
        )
        model.fit(ctr_data.train, epochs=2, verbose=0, shuffle=False)
        # The Bayes-optimal AUC (true probabilities) is about 0.79 here.
        assert evaluation.evaluate_ctr(model, ctr_data.test)["auc"] > 0.6

    def test_rating_head_starts_near_mean_rating(self, ctr_data, batch):
        model = models.ranking_model(ctr_data.spec, output="rating")
        assert abs(float(np.mean(model(batch))) - 3.5) < 0.5

    def test_unknown_output_raises(self, ctr_data):
        with pytest.raises(ValueError, match="Received: output='prob'"):
            models.ranking_model(ctr_data.spec, output="prob")

    def test_hidden_int_raises(self, ctr_data):
        with pytest.raises(TypeError, match="sequence of layer widths"):
            models.ranking_model(ctr_data.spec, hidden=64)

    def test_spec_type_checked(self):
        with pytest.raises(TypeError, match="FeatureSpec"):
            models.ranking_model({"user_id": 10})



class TestNumericFeatures:
    # Two id features and two numbers: the kinds a CSV file holds.
    SPEC = datasets.FeatureSpec(
        features=(
            datasets.Feature("user", 5),
            datasets.Feature("price", kind="numeric", mean=5.5, std=2.0),
            datasets.Feature("item", 4),
            datasets.Feature("age", kind="numeric", mean=30.0, std=10.0),
        ),
        task="ctr",
        label="clicked",
        label_kind="binary",
    )

    def _batch(self):
        return {
            "user": np.array([1, 4], np.int32),
            "price": np.array([9.5, 5.5], np.float32),
            "item": np.array([3, 0], np.int32),
            "age": np.array([20.0, 45.0], np.float32),
        }

    def test_inputs_float32_for_numbers_int32_for_ids(self):
        model = models.ranking_model(self.SPEC)
        assert {t.name: t.dtype for t in model.inputs} == {
            "user": "int32", "price": "float32",
            "item": "int32", "age": "float32",
        }
        assert model(self._batch()).shape == (2, 1)

    def test_numbers_standardised_after_the_embeddings(self):
        model = models.ranking_model(self.SPEC, embedding_dim=3)
        x0 = model.get_layer("features").output
        first = keras.Model(model.inputs, x0)(self._batch())
        # 2 id features * 3 wide, then (9.5 - 5.5) / 2 = 2,
        # (20 - 30) / 10 = -1 and (5.5 - 5.5) / 2 = 0, (45 - 30) / 10 = 1.5.
        assert first.shape == (2, 8)
        np.testing.assert_allclose(
            np.asarray(first)[:, 6:], [[2.0, -1.0], [0.0, 1.5]], atol=1e-6
        )

    def test_numbers_only(self):
        spec = datasets.FeatureSpec(
            (datasets.Feature("price", kind="numeric"),), "ctr", "y",
            "binary",
        )
        model = models.ranking_model(spec, cross_layers=1)
        out = model({"price": np.array([1.0, 2.0], np.float32)})
        assert out.shape == (2, 1)

    def test_save_load_outputs_equal(self, tmp_path):
        model = models.ranking_model(self.SPEC, cross_layers=1)
        model.save(tmp_path / "numeric.keras")
        restored = keras.models.load_model(
            tmp_path / "numeric.keras", safe_mode=True
        )
        np.testing.assert_allclose(
            np.asarray(restored(self._batch())),
            np.asarray(model(self._batch())),
            rtol=1e-6,
        )

    def test_feature_embedding_refuses_a_number(self):
        with pytest.raises(ValueError, match="numeric feature 'price'"):
            models.FeatureEmbedding(self.SPEC.features, 2)

    def test_spec_lists_only_id_vocabularies(self):
        assert self.SPEC.vocabulary_sizes == {"user": 5, "item": 4}

    def test_spec_json_round_trip(self):
        config = json.loads(json.dumps(self.SPEC.to_dict()))
        assert config["features"][1] == {
            "name": "price", "kind": "numeric", "mean": 5.5, "std": 2.0
        }
        assert datasets.FeatureSpec.from_dict(config) == self.SPEC

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"kind": "numeric", "std": 0.0}, "a `std` > 0"),
            ({"kind": "numeric", "vocabulary_size": 5},
             "takes no `vocabulary_size`"),
            ({"vocabulary_size": 5, "mean": 3.0}, "set kind='numeric'"),
            ({"kind": "float"}, "Received: kind='float'"),
            ({}, "Received: vocabulary_size=None"),
        ],
        ids=["zero_std", "numeric_vocabulary", "categorical_mean",
             "unknown_kind", "categorical_no_vocabulary"],
    )
    def test_rejects_bad_features(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            datasets.Feature("price", **kwargs)

    def test_spec_from_hand_written_dict_names_the_bad_entry(self):
        config = {
            "features": [{"name": "user", "vocab": 5}],
            "task": "ctr", "label": "y", "label_kind": "binary",
        }
        with pytest.raises(ValueError, match="Feature 0 of the spec"):
            datasets.FeatureSpec.from_dict(config)
        with pytest.raises(ValueError, match="missing \\['label_kind'\\]"):
            datasets.FeatureSpec.from_dict(
                {"features": [], "task": "ctr", "label": "y"}
            )


class TestPresets:
    def test_student_at_most_5pct_of_teacher_synthetic(self, ctr_data):
        teacher = models.teacher(ctr_data.spec)
        student = models.student(ctr_data.spec)
        assert student.count_params() <= 0.05 * teacher.count_params()

    @pytest.mark.slow
    def test_student_at_most_5pct_of_teacher_movielens(self):
        spec = datasets.movielens_100k(task="ctr").spec
        teacher = models.teacher(spec)
        student = models.student(spec)
        # The README's figures: 14,038 of 285,665 parameters, 4.9%; the
        # former width-4 preset 11,237.
        assert student.count_params() == 14_038
        assert teacher.count_params() == 285_665
        smaller = models.student(spec, embedding_dim=4)
        assert smaller.count_params() == 11_237

    def test_student_overrides_leave_the_preset_alone(self, ctr_data):
        default = models.student(ctr_data.spec).count_params()
        smaller = models.student(ctr_data.spec, embedding_dim=4)
        assert smaller.count_params() < default
        assert models.presets.STUDENT_CONFIG["embedding_dim"] == 5
        assert models.student(ctr_data.spec).count_params() == default

    def test_rating_task_gives_rating_head(self, ctr_data):
        model = models.student(ctr_data.spec, task="rating")
        assert model.layers[-1].name == "rating"

    def test_retrieval_task_raises(self, ctr_data):
        with pytest.raises(ValueError, match="use two_tower"):
            models.teacher(ctr_data.spec, task="retrieval")


class TestTwoTowerModel:
    def test_towers_read_their_features(self, retrieval_data):
        model = models.two_tower(retrieval_data.spec, embedding_dim=8)
        user_inputs = {t.name for t in model.user_model.inputs}
        item_inputs = {t.name for t in model.item_model.inputs}
        assert user_inputs == set(datasets.USER_FEATURES)
        assert item_inputs == set(datasets.ITEM_FEATURES)

    def test_loss_decreases(self, trained_two_tower):
        _, history = trained_two_tower
        losses = history.history["loss"]
        assert losses[-1] < losses[0]

    def test_hit_rate_beats_random(self, trained_two_tower, retrieval_data):
        model, _ = trained_two_tower
        metrics = evaluation.evaluate_retrieval(model, retrieval_data)
        # Random ranking of 1 positive among 100 negatives: 10 / 101.
        assert metrics["hit_rate@10"] > 2 * 10 / 101

    def test_score_is_users_by_items(self, trained_two_tower, batch):
        model, _ = trained_two_tower
        items = {k: v[:3] for k, v in batch.items()}
        scores = np.asarray(model.score(batch, items))
        assert scores.shape == (8, 3)
        # Cosine similarities of L2-normalised embeddings.
        assert np.abs(scores).max() <= 1.0 + 1e-5

    def test_call_matches_score_diagonal(self, trained_two_tower, batch):
        model, _ = trained_two_tower
        pairs = np.asarray(model(batch))[:, 0]
        np.testing.assert_allclose(
            pairs, np.diag(np.asarray(model.score(batch, batch))), atol=1e-6
        )

    def test_save_load_outputs_equal(self, trained_two_tower, batch, tmp_path):
        model, _ = trained_two_tower
        path = tmp_path / "two_tower.keras"
        model.save(path)
        restored = keras.models.load_model(path, safe_mode=True)
        np.testing.assert_allclose(
            np.asarray(restored.score(batch, batch)),
            np.asarray(model.score(batch, batch)),
            atol=1e-6,
        )
        np.testing.assert_allclose(
            restored.item_log_probability.numpy(),
            model.item_log_probability.numpy(),
        )

    def test_temperature_must_be_positive(self, retrieval_data):
        with pytest.raises(ValueError, match="Received: temperature=0"):
            models.two_tower(retrieval_data.spec, temperature=0)

    def test_item_counts_length_checked(self, retrieval_data):
        with pytest.raises(ValueError, match="Received shape \\(3,\\)"):
            models.two_tower(retrieval_data.spec, item_counts=[1, 2, 3])

    def test_missing_tower_feature_raises(self):
        spec = datasets.FeatureSpec(
            (datasets.Feature("user_id", 5), datasets.Feature("item_id", 5)),
            "retrieval",
            "label",
            "implicit",
        )
        with pytest.raises(ValueError, match="Missing: \\['age_bucket'"):
            models.two_tower(spec)
