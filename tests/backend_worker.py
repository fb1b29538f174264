"""Distils one batch under the Keras backend named by KERAS_BACKEND.

Run by tests/test_backends.py in a subprocess per backend; prints the
losses before and after one SGD step and the student's weights, as JSON.
Hand-built models with seeded initialisers and plain NumPy data, so every
backend starts from the same numbers.
"""

import json
import sys

import keras
import numpy as np

import tfkd

ROWS = 32


def _model(name, seed, width):
    user = keras.Input((1,), name="user", dtype="int32")
    item = keras.Input((1,), name="item", dtype="int32")
    embed = keras.layers.Embedding(16, width)
    x = keras.layers.Concatenate()([
        keras.layers.Flatten()(embed(user)),
        keras.layers.Flatten()(embed(item)),
    ])
    x = keras.layers.Dense(width, activation="relu")(x)
    out = keras.layers.Dense(1)(x)
    model = keras.Model({"user": user, "item": item}, out, name=name)
    # Seeded initialisers draw from each backend's own generator: set the
    # weights from NumPy so every backend starts from the same numbers.
    rng = np.random.default_rng(seed)
    model.set_weights([
        rng.normal(0.0, 0.5, w.shape).astype("float32")
        for w in model.get_weights()
    ])
    return model


def main(kind):
    rng = np.random.default_rng(0)
    features = {
        "user": rng.integers(1, 16, size=(ROWS, 1)).astype("int32"),
        "item": rng.integers(1, 16, size=(ROWS, 1)).astype("int32"),
        "unused": rng.normal(size=(ROWS, 1)).astype("float32"),
    }
    labels = (features["user"] % 2).astype("float32")
    weights = np.linspace(0.5, 1.5, ROWS).astype("float32")
    teacher = _model("teacher", seed=1, width=8)
    if kind == "cached":
        features = tfkd.teachers.cache_logits(teacher, features)
        teacher = tfkd.teachers.CachedLogits()
    distiller = tfkd.Distiller(teacher, _model("student", seed=2, width=4))
    distiller.compile(optimizer=keras.optimizers.SGD(0.5), alpha=0.3,
                      temperature=2.0)
    before = distiller.evaluate(features, labels, sample_weight=weights,
                                batch_size=ROWS, return_dict=True, verbose=0)
    distiller.fit(features, labels, sample_weight=weights, batch_size=ROWS,
                  epochs=1, shuffle=False, verbose=0)
    after = distiller.evaluate(features, labels, sample_weight=weights,
                               batch_size=ROWS, return_dict=True, verbose=0)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "before": before,
        "after": after,
        "weights": [w.tolist() for w in distiller.student.get_weights()],
        "per_term": _per_term(teacher, features, labels, weights),
    }))


def _per_term(teacher, features, labels, weights):
    """One step with a dict weight: half the rows are transfer rows (hard
    weight 0, placeholder label 7), and the AUC must skip them."""
    hard = (np.arange(ROWS) % 2).astype("float32")
    per_term = {"student": hard, "distillation": weights}
    labels = np.where(hard > 0, labels[:, 0], 7.0).astype("float32")
    distiller = tfkd.Distiller(teacher, _model("student", seed=2, width=4))
    distiller.compile(optimizer=keras.optimizers.SGD(0.5), alpha=0.3,
                      temperature=2.0,
                      metrics=[keras.metrics.AUC(from_logits=True)])
    distiller.fit(features, labels, sample_weight=per_term, batch_size=ROWS,
                  epochs=1, shuffle=False, verbose=0)
    after = distiller.evaluate(features, labels, sample_weight=per_term,
                               batch_size=ROWS, return_dict=True, verbose=0)
    labelled = keras.metrics.AUC(from_logits=True)
    labelled.update_state(
        labels[hard > 0],
        distiller.predict(features, batch_size=ROWS, verbose=0)[hard > 0])
    return {"after": after,
            "labelled_auc": float(labelled.result()),
            "weights": [w.tolist() for w in distiller.student.get_weights()]}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "live")
