"""Distils one batch under the Keras backend named by KERAS_BACKEND.

Run by tests/test_backends.py in a subprocess per backend; prints the
losses before and after one SGD step and the student's weights, as JSON.
`backend_worker.py feature` runs `feature_run` (a feature-distillation
hint) instead, for tests/test_feature_distillation.py.
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


def feature_run():
    """Three SGD epochs with a `tfkd.FeatureDistillation` hint (teacher
    Dense of width 8 to student Dense of width 4, through the projection).

    Returns:
        dict: the backend, the losses before, per epoch and after, and the
        projection kernel and student weights before and after.
    """
    rng = np.random.default_rng(0)
    features = {
        "user": rng.integers(1, 16, size=(ROWS, 1)).astype("int32"),
        "item": rng.integers(1, 16, size=(ROWS, 1)).astype("int32"),
    }
    labels = (features["user"] % 2).astype("float32")
    teacher = _model("teacher", seed=1, width=8)
    student = _model("student", seed=2, width=4)
    hint = tfkd.FeatureDistillation(
        teacher_layer=_hidden(teacher), student_layer=_hidden(student),
        weight=0.5,
    )
    distiller = tfkd.Distiller(teacher, student, feature_distillation=hint)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=0.3,
                      temperature=2.0)
    projection = distiller.feature_projection
    projection.set_weights([
        rng.normal(0.0, 0.3, w.shape).astype("float32")
        for w in projection.get_weights()
    ])
    kernel = keras.ops.convert_to_numpy(projection.kernel).tolist()
    student_before = [w.tolist() for w in student.get_weights()]
    teacher_before = [w.tolist() for w in teacher.get_weights()]
    before = distiller.evaluate(features, labels, batch_size=ROWS,
                                return_dict=True, verbose=0)
    history = distiller.fit(features, labels, batch_size=ROWS, epochs=3,
                            shuffle=False, verbose=0)
    after = distiller.evaluate(features, labels, batch_size=ROWS,
                               return_dict=True, verbose=0)
    return {
        "backend": keras.backend.backend(),
        "before": before,
        "history": history.history,
        "after": after,
        "kernel_before": kernel,
        "kernel_after": keras.ops.convert_to_numpy(projection.kernel).tolist(),
        "student_before": student_before,
        "student_after": [w.tolist() for w in student.get_weights()],
        "teacher_before": teacher_before,
        "teacher_after": [w.tolist() for w in teacher.get_weights()],
    }


def _hidden(model):
    return next(layer.name for layer in model.layers
                if isinstance(layer, keras.layers.Dense))


if __name__ == "__main__":
    if sys.argv[1:] == ["feature"]:
        print(json.dumps(feature_run()))
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "live")
