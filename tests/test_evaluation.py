import math
import os
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfkd import datasets
from tfkd import evaluation
from tfkd import models

PNG_MAGIC = b"\x89PNG"


def _identity_model():
    # Output = input, so the "logits" are exactly the fed scores.
    inputs = keras.Input((1,), name="x")
    outputs = keras.layers.Dense(
        1, kernel_initializer="ones", bias_initializer="zeros"
    )(inputs)
    return keras.Model({"x": inputs}, outputs)


class TestAuc:
    def test_hand_computed_case(self):
        # Positives 0.35 and 0.8 vs negatives 0.1 and 0.4: of the 4 pairs
        # only (0.35, 0.4) is misordered, so AUC = 3 / 4.
        assert evaluation.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75

    def test_ties_count_half(self):
        # One positive and one negative both at 0.5: AUC = 1 / 2.
        assert evaluation.auc([1, 0], [0.5, 0.5]) == 0.5

    def test_perfect_ranking(self):
        assert evaluation.auc([0, 1, 0, 1], [-2.0, 3.0, -1.0, 5.0]) == 1.0

    def test_one_class_raises(self):
        with pytest.raises(ValueError, match="needs both classes"):
            evaluation.auc([1, 1], [0.1, 0.2])

    def test_non_binary_labels_raise(self):
        with pytest.raises(ValueError, match="only 0 and 1"):
            evaluation.auc([0, 2], [0.1, 0.2])


class TestLogloss:
    def test_coin_flip_is_log_two(self):
        assert evaluation.logloss([1, 0], [0.5, 0.5]) == pytest.approx(
            math.log(2)
        )

    def test_from_logits_matches_probabilities(self):
        logits = np.array([-3.0, 0.2, 4.0])
        labels = [0, 1, 1]
        probabilities = 1 / (1 + np.exp(-logits))
        assert evaluation.logloss(
            labels, logits, from_logits=True
        ) == pytest.approx(evaluation.logloss(labels, probabilities))

    def test_length_mismatch_raises(self):
        with pytest.raises(ValueError, match="same length"):
            evaluation.logloss([1, 0], [0.5])


class TestRmse:
    def test_hand_computed_case(self):
        # Errors 0, 0, 2: sqrt(4 / 3).
        assert evaluation.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(
            math.sqrt(4 / 3)
        )


class TestHitRateAtK:
    def test_counts_positives_in_top_k(self):
        # Row 0: positive 0.5 beaten by 0.9 -> rank 2; row 1: 0.1 beaten by
        # both -> rank 3. With k=2 one of two rows hits.
        positives = [0.5, 0.1]
        negatives = [[0.9, 0.2], [0.3, 0.4]]
        assert evaluation.hit_rate_at_k(positives, negatives, k=2) == 0.5

    def test_ties_count_against_positive(self):
        assert evaluation.hit_rate_at_k([1.0], [[1.0, 1.0]], k=2) == 0.0

    def test_masked_negatives_never_outrank(self):
        assert evaluation.hit_rate_at_k([0.0], [[-np.inf, 1.0]], k=1) == 0.0
        assert evaluation.hit_rate_at_k([0.0], [[-np.inf, -1.0]], k=1) == 1.0

    def test_k_must_be_positive(self):
        with pytest.raises(ValueError, match="Received: k=0"):
            evaluation.hit_rate_at_k([1.0], [[0.0]], k=0)

    def test_shape_mismatch_raises(self):
        with pytest.raises(ValueError, match="must have shape \\(n, m\\)"):
            evaluation.hit_rate_at_k([1.0, 2.0], [[0.0]])


class TestNdcgAtK:
    @pytest.mark.parametrize(
        "negatives, expected",
        [
            ([[0.1, 0.2, 0.3]], 1.0),  # rank 1: 1 / log2(2)
            ([[0.9, 0.8, 0.1]], 0.5),  # rank 3: 1 / log2(4)
            ([[0.9, 0.8, 0.7]], 0.0),  # rank 4 > k
        ],
        ids=["rank1", "rank3", "beyond_k"],
    )
    def test_single_relevant_item(self, negatives, expected):
        got = evaluation.ndcg_at_k([0.5], negatives, k=3)
        assert got == pytest.approx(expected)


class TestSampleNegatives:
    def test_excludes_interacted_items(self):
        negatives = evaluation.sample_negatives(
            [1, 2], {1: {1, 2}, 2: {3}}, vocabulary_size=6, num_negatives=3
        )
        assert set(negatives[0]) == {3, 4, 5}
        assert not {3, 0} & set(negatives[1])
        assert len(set(negatives[1])) == 3

    def test_seeded(self):
        args = ([1] * 4, {1: {1}}, 50, 10)
        first = evaluation.sample_negatives(*args, seed=1)
        np.testing.assert_array_equal(
            first, evaluation.sample_negatives(*args, seed=1)
        )

    def test_too_few_candidates_raise(self):
        with pytest.raises(ValueError, match="Received: num_negatives=5"):
            evaluation.sample_negatives([1], {1: {1}}, 4, num_negatives=5)


class TestCountParamsAndModelBytes:
    def test_dense_layer(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        # 2 x 3 kernel + 3 biases = 9 floats = 36 bytes.
        assert evaluation.count_params(model) == 9
        assert evaluation.model_bytes(model) == 36


def _item_user_model(structure, activation=None):
    # score = item + 10 * user, with the inputs listed item first (not in
    # sorted order).
    item = keras.Input((1,), name="item")
    user = keras.Input((1,), name="user")
    score = keras.layers.Dense(
        1,
        activation=activation,
        kernel_initializer=keras.initializers.Constant([[1.0], [10.0]]),
        bias_initializer="zeros",
    )(keras.layers.Concatenate()([item, user]))
    inputs = [item, user]
    if structure == "dict":
        inputs = {"item": item, "user": user}
    return keras.Model(inputs, score)


def _item_user_dataset():
    # By name: scores [3, 2, 11, 10], positives on top, AUC = 1. Matched
    # by position, the dict model reads "a" as item and item as user:
    # a + 10 * item = [39, 28, 17, 6], AUC = 0.
    features = {
        "a": np.array([[9.0], [8.0], [7.0], [6.0]], np.float32),
        "item": np.array([[3.0], [2.0], [1.0], [0.0]], np.float32),
        "user": np.array([[0.0], [0.0], [1.0], [1.0]], np.float32),
        "zz": np.array([[5.0], [5.0], [5.0], [5.0]], np.float32),
    }
    labels = np.array([0, 0, 1, 1], np.float32)
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)


class TestEvaluateCtr:
    @pytest.mark.parametrize("structure", ["list", "dict"])
    def test_extra_columns_do_not_shift_inputs(self, structure):
        metrics = evaluation.evaluate_ctr(
            _item_user_model(structure), _item_user_dataset()
        )
        assert metrics["auc"] == 1.0

    def test_missing_column_names_it(self):
        dataset = _item_user_dataset().map(
            lambda x, y: ({"item": x["item"]}, y)
        )
        with pytest.raises(ValueError, match="has no \\['user'\\]"):
            evaluation.evaluate_ctr(_item_user_model("dict"), dataset)

    def test_sigmoid_head_is_scored_as_probabilities(self):
        model = _item_user_model("dict", activation="sigmoid")
        metrics = evaluation.evaluate_ctr(model, _item_user_dataset())
        # sigmoid([3, 2, 11, 10]) against labels [0, 0, 1, 1], computed
        # once here; a second sigmoid would give a larger logloss.
        probabilities = 1 / (1 + np.exp(-np.array([3.0, 2.0, 11.0, 10.0])))
        assert metrics["logloss"] == pytest.approx(
            evaluation.logloss([0, 0, 1, 1], probabilities), rel=1e-5
        )

    @pytest.mark.parametrize(
        "activation,from_logits,fragment",
        [("sigmoid", True, "apply the sigmoid twice"),
         (None, False, "read them as probabilities")],
        ids=["logits_on_sigmoid", "probabilities_on_logits"],
    )
    def test_refuses_from_logits_that_contradicts_head(
        self, activation, from_logits, fragment
    ):
        model = _item_user_model("dict", activation=activation)
        with pytest.raises(ValueError, match=fragment):
            evaluation.evaluate_ctr(
                model, _item_user_dataset(), from_logits=from_logits
            )

    def test_matches_hand_computed_metrics(self):
        scores = np.array([[0.1], [0.4], [0.35], [0.8]], np.float32)
        labels = np.array([0, 0, 1, 1], np.float32)
        dataset = tf.data.Dataset.from_tensor_slices(
            ({"x": scores}, labels)
        ).batch(3)
        metrics = evaluation.evaluate_ctr(_identity_model(), dataset)
        assert metrics["auc"] == pytest.approx(0.75)
        assert metrics["logloss"] == pytest.approx(
            evaluation.logloss(labels, scores[:, 0], from_logits=True)
        )


class TestEvaluateRetrieval:
    @pytest.mark.parametrize(
        "num_negatives", [100, None], ids=["sampled", "full"]
    )
    def test_returns_metrics_in_unit_range(self, num_negatives):
        data = datasets.synthetic_movielens(task="retrieval")
        model = models.two_tower(data.spec, embedding_dim=4, hidden=())
        metrics = evaluation.evaluate_retrieval(
            model, data, k=5, num_negatives=num_negatives
        )
        assert set(metrics) == {"hit_rate@5", "ndcg@5"}
        assert 0.0 <= metrics["ndcg@5"] <= metrics["hit_rate@5"] <= 1.0


    def test_list_towers_match_dict_towers(self):
        # The same layers, declared as a list in non-sorted order or as a
        # dict: each tower must be fed its columns by name either way.
        data = datasets.synthetic_movielens(task="retrieval")
        spec = {f.name: f.vocabulary_size for f in data.spec.features}

        def towers(structure):
            result = {}
            for tower, names in (("user_model", ["occupation", "user_id"]),
                                 ("item_model", ["item_id"])):
                inputs = [
                    keras.Input((), dtype="int32", name=n) for n in names
                ]
                vectors = [
                    layers[n](x)
                    for n, x in zip(names, inputs, strict=True)
                ]
                out = (
                    vectors[0]
                    if len(vectors) == 1
                    else (keras.layers.Add()(vectors))
                )
                if structure == "dict":
                    inputs = dict(zip(names, inputs, strict=True))
                result[tower] = keras.Model(inputs, out)
            return types.SimpleNamespace(**result)

        layers = {
            name: keras.layers.Embedding(
                spec[name],
                4,
                embeddings_initializer=keras.initializers.RandomNormal(seed=i),
            )
            for i, name in enumerate(["occupation", "user_id", "item_id"])
        }
        as_list = evaluation.evaluate_retrieval(towers("list"), data, k=5)
        as_dict = evaluation.evaluate_retrieval(towers("dict"), data, k=5)
        assert as_list == as_dict
        assert 0.0 <= as_list["ndcg@5"] <= as_list["hit_rate@5"] <= 1.0


class TestComparisonTable:
    def test_aligned_columns(self):
        table = evaluation.comparison_table(
            {
                "teacher": {"auc": 0.8, "params": 285665},
                "student": {"auc": 0.79, "params": 11237, "note": None},
            }
        )
        assert table == (
            "model       auc   params  note\n"
            "-------  ------  -------  ----\n"
            "teacher  0.8000  285,665     -\n"
            "student  0.7900   11,237     -"
        )

    def test_rejects_non_dict(self):
        with pytest.raises(TypeError, match="must be a dict"):
            evaluation.comparison_table([("teacher", {})])


class TestPlotLearningCurves:
    def test_writes_png(self, tmp_path):
        path = evaluation.plot_learning_curves(
            {
                "teacher": {"loss": [0.7, 0.5], "val_loss": [0.72, 0.6]},
                "student": {"loss": [0.8, 0.6]},
            },
            tmp_path / "plots" / "curves.png",
        )
        with open(path, "rb") as png:
            assert png.read(4) == PNG_MAGIC

    def test_unknown_metric_lists_available(self, tmp_path):
        with pytest.raises(ValueError, match="Available: \\['loss'\\]"):
            evaluation.plot_learning_curves(
                {"m": {"loss": [1.0]}}, tmp_path / "c.png", metric="auc"
            )


class TestPlotQualityVsSize:
    def test_writes_png(self, tmp_path):
        path = evaluation.plot_quality_vs_size(
            {
                "teacher": {"auc": 0.80, "bytes": 1_142_660},
                "student": {"auc": 0.79, "bytes": 44_948},
            },
            tmp_path / "size.png",
        )
        with open(path, "rb") as png:
            assert png.read(4) == PNG_MAGIC

    def test_missing_metric_raises(self, tmp_path):
        with pytest.raises(ValueError, match="lacks \\['bytes'\\]"):
            evaluation.plot_quality_vs_size(
                {"m": {"auc": 0.5}}, tmp_path / "s.png"
            )


class TestAgainstMaintainedLibraries:
    """tfkd's metrics agree with Keras' and keras-rs' on the same scores.

    tfkd keeps its own: an exact AUC (Keras' is a threshold approximation
    that needs `num_thresholds` set high to agree), and HR/NDCG on numpy
    arrays of any size without building a (rows, 1 + negatives) tensor.
    """

    def test_auc_matches_keras(self):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, 2000)
        scores = rng.normal(size=2000) + labels
        metric = keras.metrics.AUC(num_thresholds=20_000, from_logits=True)
        metric.update_state(labels, scores)
        assert evaluation.auc(labels, scores) == pytest.approx(
            float(metric.result()), abs=1e-3
        )

    @pytest.mark.parametrize("k", [1, 5, 10])
    def test_hit_rate_and_ndcg_match_keras_rs(self, k):
        import keras_rs

        rng = np.random.default_rng(k)
        positives = rng.normal(size=300) + 1.0
        negatives = rng.normal(size=(300, 20))
        scores = np.concatenate([positives[:, None], negatives], axis=1)
        relevance = np.zeros_like(scores)
        relevance[:, 0] = 1.0
        ndcg = keras_rs.metrics.NDCG(k=k)
        ndcg.update_state(relevance, scores)
        recall = keras_rs.metrics.RecallAtK(k=k)
        recall.update_state(relevance, scores)
        assert evaluation.ndcg_at_k(positives, negatives, k=k) == (
            pytest.approx(float(ndcg.result()), abs=1e-5)
        )
        assert evaluation.hit_rate_at_k(positives, negatives, k=k) == (
            pytest.approx(float(recall.result()), abs=1e-5)
        )
