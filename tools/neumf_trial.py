"""One-off (README, retrieval): NeuMF (He et al. 2017: GMF + MLP on user
and item ids, BCE
against 4 uniformly drawn items per positive, redrawn each epoch) on tfkd's
ML-100K leave-one-out protocol, scored with tfkd's own HR/NDCG@10 against
the same 100 sampled negatives. Early stopping on val NDCG@10, patience 10.

    .venv/bin/python tools/neumf_trial.py EMBEDDING_DIM
"""
import sys
import time

import keras
import numpy as np

from tfkd import datasets
from tfkd.evaluation import retrieval_metrics as rm

DIM = int(sys.argv[1]) if len(sys.argv) > 1 else 32
NEG = 4
keras.utils.set_random_seed(0)
data = datasets.movielens_100k(task="retrieval", seed=42)
n_users = data.spec["user_id"].vocabulary_size
n_items = data.spec["item_id"].vocabulary_size
u_in = keras.Input((), dtype="int32")
i_in = keras.Input((), dtype="int32")
emb = lambda n: keras.layers.Embedding(n, DIM)  # noqa: E731
gmf = emb(n_users)(u_in) * emb(n_items)(i_in)
x = keras.layers.Concatenate()([emb(n_users)(u_in), emb(n_items)(i_in)])
for width in (2 * DIM, DIM, DIM // 2):
    x = keras.layers.Dense(width, activation="relu")(x)
out = keras.layers.Dense(1)(keras.layers.Concatenate()([gmf, x]))
model = keras.Model([u_in, i_in], out)
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.BinaryCrossentropy(from_logits=True))
interacted = rm._interactions(data.frames)


def evaluate(split, num_negatives=100):
    frame = data.frames[split]
    users = frame["user_id"].to_numpy()
    pos = frame["item_id"].to_numpy()
    neg = rm.sample_negatives(users, interacted, n_items, num_negatives, 0)
    cands = np.concatenate([pos[:, None], neg], 1)
    scores = model.predict([np.repeat(users, cands.shape[1]), cands.ravel()],
                           batch_size=8192, verbose=0).reshape(cands.shape)
    return (rm.hit_rate_at_k(scores[:, 0], scores[:, 1:], 10),
            rm.ndcg_at_k(scores[:, 0], scores[:, 1:], 10))


train = data.frames["train"]
tu, ti = train["user_id"].to_numpy(), train["item_id"].to_numpy()
rng = np.random.default_rng(0)
best, best_w, wait, started = -1, None, 0, time.perf_counter()
for epoch in range(100):
    neg = rng.integers(1, n_items, (len(tu), NEG))
    users = np.concatenate([tu, np.repeat(tu, NEG)])
    items = np.concatenate([ti, neg.ravel()])
    labels = np.concatenate([np.ones(len(tu)), np.zeros(neg.size)])
    model.fit([users, items], labels, batch_size=256, epochs=1, verbose=0,
              shuffle=True)
    val = evaluate("val")[1]
    if val > best:
        best, best_w, wait, best_epoch = val, model.get_weights(), 0, epoch + 1
    else:
        wait += 1
        if wait >= 10:
            break
model.set_weights(best_w)
hr, ndcg = evaluate("test")
print(f"NeuMF dim {DIM}: params {model.count_params():,}, epochs {epoch + 1} "
      f"(best {best_epoch}), val ndcg {best:.4f}, test HR@10 {hr:.4f}, "
      f"NDCG@10 {ndcg:.4f}, {time.perf_counter() - started:.0f} s", flush=True)
