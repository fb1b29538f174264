"""`tfkd.recipes`: the teacher ensemble and the transfer set that the
default recipe trains with, on a synthetic MovieLens of the real shape."""

import dataclasses

import keras
import numpy as np
import pytest

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd import recipes
from tfkd import teachers
from tfkd.datasets import transfer
from tfkd.datasets.pipelines import features_from_frame
from tfkd.datasets.pipelines import frame_to_dataset

QUICK = recipes.Recipe(epochs=1, teachers=1, transfer_size=0)


@pytest.fixture(scope="module")
def synthetic():
    return datasets.synthetic_movielens(
        num_users=60, num_items=80, num_ratings=1200, task="ctr", seed=5
    )


@pytest.fixture(scope="module")
def teacher(synthetic):
    keras.utils.set_random_seed(0)
    model, _ = recipes.train_teachers(
        lambda: models.teacher(synthetic.spec), synthetic, QUICK, verbose=0)
    return model


def _weights(model):
    return np.concatenate([w.ravel() for w in model.get_weights()])


class TestTrainTeachers:
    def test_one_teacher_is_the_model(self, teacher):
        assert isinstance(teacher, keras.Model)
        assert not isinstance(teacher, teachers.Ensemble)

    def test_members_differ_and_each_is_reproducible(self, synthetic,
                                                      capsys):
        config = QUICK.replace(teachers=2, seed=7)
        build = lambda: models.teacher(synthetic.spec)  # noqa: E731
        ensemble, histories = recipes.train_teachers(build, synthetic,
                                                     config, verbose=1)
        assert isinstance(ensemble, teachers.Ensemble)
        assert len(ensemble.members) == len(histories) == 2
        first, second = (_weights(m) for m in ensemble.members)
        assert not np.allclose(first, second)
        # One progress line per member, numbered.
        err = capsys.readouterr().err
        assert "teacher 1/2:" in err and "teacher 2/2:" in err
        # Member 1 alone, from the same seed and shuffle, is the same model:
        # no member depends on what was trained before it.
        again, _ = recipes.train_teachers(build, synthetic, config, verbose=0)
        np.testing.assert_allclose(_weights(again.members[1]), second,
                                   atol=1e-5)
        assert evaluation.count_params(ensemble) == 2 * (
            evaluation.count_params(ensemble.members[0]))

    def test_teachers_must_be_a_positive_int(self, synthetic):
        with pytest.raises(ValueError, match="teachers"):
            recipes.train_teachers(
                lambda: models.teacher(synthetic.spec), synthetic,
                QUICK.replace(teachers=0), verbose=0)


class TestTransferSetInTheRecipe:
    def test_distils_from_cached_logits_on_the_transfer_rows(
            self, synthetic, teacher):
        config = QUICK.replace(transfer_size=2.0)
        cached, data, note = recipes._with_transfer_set(teacher, synthetic,
                                                        config)
        assert note == ", 2x transfer set"
        assert isinstance(cached, teachers.CachedLogits)
        features, labels, weights = next(iter(data.train.unbatch().batch(
            10_000)))
        train_rows = len(synthetic.frames["train"])
        assert len(labels) == 3 * train_rows
        assert float(np.sum(weights["student"])) == train_rows
        # The validation rows carry the teacher's logits, in row order.
        val_features, _ = next(iter(data.val.unbatch().batch(10_000)))
        expected = teacher.predict(
            features_from_frame(synthetic.frames["val"], synthetic.spec),
            verbose=0)
        np.testing.assert_allclose(val_features["teacher_logits"], expected,
                                   atol=1e-5)
        assert "teacher_logits" in features

    def test_trains_a_student_through_the_transfer_set(self, synthetic,
                                                        teacher):
        config = QUICK.replace(transfer_size=1.0)
        student, history = recipes.train_distilled(
            teacher, models.student(synthetic.spec), synthetic, config,
            verbose=0)
        assert np.isfinite(history.history["val_auc"]).all()
        assert student.name == "student"

    def test_off_at_zero(self, synthetic, teacher):
        same, data, note = recipes._with_transfer_set(teacher, synthetic,
                                                      QUICK)
        assert same is teacher and data is synthetic and note == ""

    def test_data_without_tables_trains_on_its_rows_and_says_so(
            self, synthetic, teacher):
        bare = dataclasses.replace(synthetic, users=synthetic.users.iloc[:0])
        assert transfer.has_tables(synthetic)
        assert not transfer.has_tables(bare)
        assert not transfer.has_tables(object())
        config = QUICK.replace(transfer_size=5.0)
        same, data, note = recipes._with_transfer_set(teacher, bare, config)
        assert same is teacher and data is bare
        assert note == ", no transfer set: no user and item tables"


def test_frame_to_dataset_caches_the_teachers_logits(synthetic, teacher):
    frame = synthetic.frames["test"]
    dataset = frame_to_dataset(frame, synthetic.spec, batch_size=64,
                               teacher=teacher)
    features, labels = next(iter(dataset.unbatch().batch(10_000)))
    np.testing.assert_allclose(
        features["teacher_logits"],
        teacher.predict(features_from_frame(frame, synthetic.spec),
                        verbose=0),
        atol=1e-5)
    np.testing.assert_array_equal(labels, frame[synthetic.spec.label])


@pytest.mark.parametrize("distilled, expected", [
    (0.8670, (0.8670 - 0.8550) / (0.8698 - 0.8550)),
    (0.8550, 0.0),
    (0.8698, 1.0),
    (0.8400, (0.8400 - 0.8550) / (0.8698 - 0.8550)),
])
def test_gap_recovery(distilled, expected):
    assert evaluation.gap_recovery(distilled, 0.8550, 0.8698) == (
        pytest.approx(expected))


def test_gap_recovery_without_a_gap_is_none():
    assert evaluation.gap_recovery(0.9, 0.85, 0.85) is None


class TestDemoRecipe:
    def test_only_the_teachers_patience_is_shorter(self):
        demo_recipe = recipes.Recipe.demo()
        assert demo_recipe.teacher_patience < demo_recipe.patience
        assert demo_recipe.patience == recipes.Recipe().patience
        assert recipes.Recipe().teacher_patience is None

    def test_teachers_stop_on_their_own_patience(self, monkeypatch):
        seen = []

        def fake_train(model, data, config, verbose=1, label=None):
            seen.append(config.patience)
            return model, None

        monkeypatch.setattr(recipes, "train_supervised", fake_train)
        monkeypatch.setattr(teachers, "Ensemble", list)
        config = recipes.Recipe(teachers=2, patience=9, teacher_patience=3)
        recipes.train_teachers(_Named, _NoFrames(), config, 0)
        assert seen == [3, 3]
        seen.clear()
        recipes.train_teachers(_Named, _NoFrames(),
                               dataclasses.replace(
                                   config, teachers=1,
                                   teacher_patience=None), 0)
        assert seen == [9]


class _NoFrames:
    """Data without frames: `reshuffled` hands it back as it is."""


class _Named:
    name = "teacher"
