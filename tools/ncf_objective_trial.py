"""One-off (README, retrieval): the seed-0 retrieval teacher trained
with NCF's objective
(pointwise BCE, each positive against N uniformly drawn items) instead of
the logQ in-batch softmax. Same towers, same early stopping on val NDCG@10.

    .venv/bin/python tools/ncf_objective_trial.py NEGATIVES TEMPERATURE
"""
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfkd import datasets
from tfkd import retrieval_quality as rq
from tfkd.datasets.schema import ITEM_FEATURES
from tfkd.models.two_tower import _input_names

NEG = int(sys.argv[1]) if len(sys.argv) > 1 else 4
TEMP = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1


class Pointwise(keras.Model):
    def __init__(self, model, items, num_negatives):
        super().__init__()
        self.model = model
        items = items.sort_values("item_id")
        # Row r of the table is item id r + 1: ids are drawn from 1..n.
        assert (items["item_id"].to_numpy() == np.arange(1, len(items) + 1)
                ).all()
        self.table = {n: tf.constant(np.stack(items[n].to_numpy()))
                      for n in ITEM_FEATURES
                      if n in items}
        self.n = num_negatives
        self.count = len(items)
        self.tracker = keras.metrics.Mean(name="loss")

    def train_step(self, data):
        features = data[0] if isinstance(data, tuple) else data
        b = tf.shape(features["item_id"])[0]
        rows = tf.random.uniform((b * self.n,), 0, self.count, dtype=tf.int32)
        negatives = {k: tf.gather(v, rows) for k, v in self.table.items()}
        with tf.GradientTape() as tape:
            users, items = self.model.embed(features, training=True)
            neg_items = self.model.item_model(
                {k: negatives[k] for k in _input_names(self.model.item_model)},
                training=True)
            pos = tf.reduce_sum(users * items, -1) / TEMP
            rep = tf.repeat(users, self.n, axis=0)
            neg = tf.reduce_sum(rep * neg_items, -1) / TEMP
            logits = tf.concat([pos, neg], 0)
            labels = tf.concat([tf.ones_like(pos), tf.zeros_like(neg)], 0)
            loss = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        self.tracker.update_state(loss)
        return {"loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


data = datasets.movielens_100k(task="retrieval", seed=rq.SPLIT_SEED)
settings = rq.RetrievalSettings()
started = time.perf_counter()
model = rq._two_tower(data, rq.TEACHER, 0, settings)
trainer = Pointwise(model, data.items, NEG)
trainer.compile(optimizer=keras.optimizers.Adam(settings.learning_rate))
row = rq._fit(trainer, model, data, settings)
row.update(rq._evaluate(model, data))
print(f"NCF objective, {NEG} negatives, T {TEMP}: {row}, "
      f"{time.perf_counter() - started:.0f} s", flush=True)
