"""The small trained two-tower and Keras' exact top-K that the retrieval
export tests (`test_retrieval_export.py`, `test_retrieval_table.py`) share,
and the NumPy reference of the in-batch KD term."""

import keras
import numpy as np

from tfkd import datasets
from tfkd import models

SEED = 1234


def trained_two_tower():
    """`(data, model)`: one epoch on synthetic retrieval data, seeded.

    Seeded here, not by the per-test seed: a module fixture runs before
    it, and would otherwise start from whatever the previous test left.
    """
    keras.utils.set_random_seed(SEED)
    data = datasets.synthetic_movielens(task="retrieval", seed=0)
    model = models.two_tower(data.spec, embedding_dim=8, hidden=(16,))
    model.compile(optimizer="adam")
    model.fit(data.train, epochs=1, verbose=0)
    return data, model


def keras_top_ids(model, data, users, k):
    """The item ids of exact Keras retrieval, best first, `(users, k)`."""
    items = datasets.features_from_frame(
        data.items, data.spec, names=datasets.ITEM_FEATURES
    )
    scores = np.asarray(model.score(users, items))
    return items["item_id"][np.argsort(-scores, axis=1)[:, :k]]


def np_in_batch_kd(teacher_logits, student_logits, t):
    """KL(p_t || p_s) row by row at temperature t, row mean, times t^2."""
    def log_softmax(x):
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    log_p_t = log_softmax(teacher_logits / t)
    log_p_s = log_softmax(student_logits / t)
    kl = (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=-1)
    return kl.mean() * t**2
