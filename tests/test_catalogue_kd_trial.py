"""The catalogue KD term of `tools/catalogue_kd_trial.py` (README figures):
the whole catalogue's softmax KL, checked against NumPy."""

import keras
import numpy as np
import pytest

from tests.retrieval_helpers import np_in_batch_kd
from tests.tool_loading import load_tool
from tfkd import datasets
from tfkd import models


@pytest.fixture(scope="module")
def trial():
    return load_tool("catalogue_kd_trial")


@pytest.fixture(scope="module")
def data():
    return datasets.synthetic_movielens(task="retrieval", seed=0)


def _models(data):
    keras.utils.set_random_seed(0)
    teacher = models.two_tower(data.spec, embedding_dim=16, hidden=(16,))
    student = models.two_tower(data.spec, embedding_dim=8, hidden=(8,))
    return teacher, student


def _catalogue(data):
    return datasets.features_from_frame(
        data.items, data.spec, names=datasets.ITEM_FEATURES)


def test_term_is_softmax_kl_over_the_whole_catalogue(trial, data):
    teacher, student = _models(data)
    distiller = trial.CatalogueDistiller(teacher, student)
    distiller.compile(alpha=0.0, temperature=2.0)
    distiller.set_catalogue(data.items)
    batch = datasets.features_from_frame(data.frames["train"].iloc[:16],
                                         data.spec)
    items = _catalogue(data)
    assert distiller.teacher_items.shape[0] == len(np.unique(items["item_id"]))
    teacher_logits = np.asarray(teacher.score(batch, items))
    student_logits = np.asarray(student.score(batch, items))
    np.testing.assert_allclose(
        float(distiller.compute_losses(batch)),
        np_in_batch_kd(teacher_logits / teacher.temperature,
            student_logits / student.temperature, 2.0),
        rtol=1e-4)


def test_copy_of_teacher_has_zero_loss(trial, data):
    teacher, _ = _models(data)
    copy = models.TwoTowerModel.from_config(teacher.get_config())
    copy.set_weights(teacher.get_weights())
    distiller = trial.CatalogueDistiller(teacher, copy)
    distiller.compile(alpha=0.0)
    distiller.set_catalogue(data.items)
    batch = datasets.features_from_frame(data.frames["train"].iloc[:16],
                                         data.spec)
    assert abs(float(distiller.compute_losses(batch))) < 1e-5
