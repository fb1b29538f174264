"""Tests for tfkd.teachers: Ensemble and CachedLogits, on hand-built models."""

import json

import keras
import numpy as np
import pytest

import tfkd
from tfkd import teachers

ROWS = 64


def _one_feature_model(feature, scale, name):
    """logit = scale * (id of `feature`), through a ones-initialised Dense."""
    x = keras.Input((1,), name=feature, dtype="float32")
    out = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(scale),
        bias_initializer="zeros",
    )(x)
    return keras.Model(x, out, name=name)


def _two_feature_model(name, seed):
    user = keras.Input((1,), name="user", dtype="int32")
    item = keras.Input((1,), name="item", dtype="int32")
    embed = keras.layers.Embedding(
        10, 4, embeddings_initializer=keras.initializers.RandomNormal(
            seed=seed))
    x = keras.layers.Concatenate()(
        [keras.layers.Flatten()(embed(user)), keras.layers.Flatten()(
            embed(item))])
    out = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed=seed)
    )(x)
    return keras.Model({"user": user, "item": item}, out, name=name)


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return {
        "user": rng.integers(1, 10, size=(ROWS, 1)).astype("int32"),
        "item": rng.integers(1, 10, size=(ROWS, 1)).astype("int32"),
        "genre": rng.integers(1, 5, size=(ROWS, 1)).astype("int32"),
    }


class TestEnsemble:
    def test_weighted_mean_of_member_logits(self):
        # Member a reads "a" (logit 2a), member b reads "b" (logit -b).
        # Weights 1 and 3: (1 * 2a + 3 * -b) / 4. For a=2, b=4: (4-12)/4=-2.
        ensemble = teachers.Ensemble(
            [_one_feature_model("a", 2.0, "ma"),
             _one_feature_model("b", -1.0, "mb")],
            weights=[1, 3],
        )
        out = ensemble({"a": np.array([[2.0]]), "b": np.array([[4.0]]),
                        "unused": np.array([[9.0]])})
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out), [[-2.0]])

    def test_equal_weights_by_default(self):
        ensemble = teachers.Ensemble(
            [_one_feature_model("a", 2.0, "ma"),
             _one_feature_model("a", 4.0, "mb")]
        )
        out = ensemble({"a": np.array([[1.0]])})
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out), [[3.0]])

    def test_members_are_frozen(self):
        member = _one_feature_model("a", 1.0, "m")
        teachers.Ensemble([member])
        assert not member.trainable

    @pytest.mark.parametrize(
        "members, weights, error, fragment",
        [
            ([], None, ValueError, "non-empty list"),
            (["not a model"], None, TypeError, "must be a `keras.Model`"),
            (None, [1.0, -1.0], ValueError, "positive numbers"),
            (None, [1.0], ValueError, "2 positive numbers"),
        ],
        ids=["empty", "not_a_model", "negative_weight", "weight_count"],
    )
    def test_validation(self, members, weights, error, fragment):
        if members is None:
            members = [_one_feature_model("a", 1.0, "ma"),
                       _one_feature_model("a", 1.0, "mb")]
        with pytest.raises(error, match=fragment):
            teachers.Ensemble(members, weights=weights)

    def test_refuses_probability_member(self):
        x = keras.Input((1,), name="a")
        member = keras.Model(
            x, keras.layers.Dense(1, activation="sigmoid")(x), name="probs")
        with pytest.raises(ValueError, match="'probs' ends in sigmoid"):
            teachers.Ensemble([member])

    def test_refuses_members_of_different_shapes(self):
        x = keras.Input((1,), name="a")
        wide = keras.Model(x, keras.layers.Dense(3)(x))
        with pytest.raises(ValueError, match="one shape"):
            teachers.Ensemble([_one_feature_model("a", 1.0, "m"), wide])

    def test_json_config_round_trip(self):
        ensemble = teachers.Ensemble(
            [_one_feature_model("a", 2.0, "ma"),
             _one_feature_model("a", 4.0, "mb")], weights=[1.0, 2.0])
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(
            ensemble)))
        restored = keras.saving.deserialize_keras_object(config)
        assert restored.member_weights == [1.0, 2.0]
        x = {"a": np.array([[1.5]], dtype="float32")}
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(restored(x)),
            keras.ops.convert_to_numpy(ensemble(x)),
        )

    def test_distils_and_saves_with_the_distiller(self, features, tmp_path):
        members = [_two_feature_model(f"t{i}", seed=i) for i in range(2)]
        before = [m.get_weights() for m in members]
        student = _two_feature_model("student", seed=7)
        distiller = tfkd.Distiller(teachers.Ensemble(members), student)
        distiller.compile(optimizer="adam", alpha=0.5, temperature=2.0)
        labels = (features["user"] > 5).astype("float32")
        history = distiller.fit(features, labels, epochs=1, verbose=0)
        assert set(history.history) >= {"loss", "distillation_loss"}
        for member, weights in zip(members, before, strict=True):
            for old, new in zip(weights, member.get_weights(), strict=True):
                np.testing.assert_array_equal(old, new)
        path = str(tmp_path / "d.keras")
        distiller.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded.teacher(features)),
            keras.ops.convert_to_numpy(distiller.teacher(features)),
            rtol=1e-6,
        )


class TestCachedLogits:
    def test_cache_logits_adds_the_teacher_column(self, features):
        teacher = _two_feature_model("teacher", seed=1)
        cached = teachers.cache_logits(teacher, features, batch_size=16)
        assert set(cached) == set(features) | {"teacher_logits"}
        expected = keras.ops.convert_to_numpy(teacher(
            {"user": features["user"], "item": features["item"]}))
        np.testing.assert_allclose(cached["teacher_logits"], expected,
                                   rtol=1e-6, atol=1e-6)

    def test_same_loss_and_step_as_the_live_teacher(self, features):
        teacher = _two_feature_model("teacher", seed=1)
        cached = teachers.cache_logits(teacher, features)
        labels = (features["item"] > 4).astype("float32")
        results = []
        for source, data in ((teacher, features),
                             (teachers.CachedLogits(), cached)):
            student = _two_feature_model("student", seed=3)
            distiller = tfkd.Distiller(source, student)
            distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                              alpha=0.3, temperature=2.0)
            logs = distiller.evaluate(data, labels, batch_size=ROWS,
                                      return_dict=True, verbose=0)
            distiller.fit(data, labels, batch_size=ROWS, epochs=1,
                          shuffle=False, verbose=0)
            results.append((logs, student.get_weights()))
        (live, live_w), (offline, offline_w) = results
        for key in ("loss", "student_loss", "distillation_loss"):
            np.testing.assert_allclose(offline[key], live[key], rtol=1e-5)
        for a, b in zip(live_w, offline_w, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

    def test_missing_column_names_the_fix(self, features):
        with pytest.raises(ValueError, match="cache_logits"):
            teachers.CachedLogits()(features)

    def test_refuses_to_cache_probabilities(self, features):
        x = keras.Input((1,), name="user")
        probs = keras.Model(x, keras.layers.Dense(1, activation="sigmoid")(x))
        with pytest.raises(ValueError, match="logits, not probabilities"):
            teachers.cache_logits(probs, features)

    def test_refuses_an_existing_key(self, features):
        with pytest.raises(ValueError, match="already hold 'user'"):
            teachers.cache_logits(_two_feature_model("t", 1), features,
                                  key="user")

    def test_config_round_trip(self):
        restored = teachers.CachedLogits.from_config(
            json.loads(json.dumps(teachers.CachedLogits(key="z").get_config())))
        assert restored.key == "z"
