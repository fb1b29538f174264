"""The Distiller under mixed precision policies.

Issue 11: `keras.mixed_precision.set_global_policy("mixed_float16")` or
`"mixed_bfloat16"` crashed `fit` (float16 loss times a float32 alpha). The
logits are now cast to float32 before both losses.
"""

import keras
import numpy as np
import pytest
from dense_models import FEATURES
from dense_models import dense_model
from dense_models import sigmoid

import tfkd

T = 2.0


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def policy(request):
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(previous)


def test_fit_and_evaluate(policy):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    teacher, student = dense_model(1), dense_model(5)
    compute = "float16" if policy == "mixed_float16" else "bfloat16"
    assert student.outputs[0].dtype == compute
    distiller = tfkd.Distiller(teacher, student)
    distiller.compile(keras.optimizers.SGD(0.1), alpha=0.5, temperature=T)
    if policy == "mixed_float16":
        assert isinstance(
            distiller.optimizer, keras.optimizers.LossScaleOptimizer
        )
    before = [w.numpy().copy() for w in student.trainable_weights]
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0,
                            validation_data=(x, y))
    for key in ("loss", "student_loss", "distillation_loss"):
        assert np.all(np.isfinite(history.history[key]))
        assert np.all(np.isfinite(history.history["val_" + key]))
    assert any(
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, student.trainable_weights, strict=True)
    )
    result = distiller.evaluate(
        x, y, batch_size=len(y), verbose=0, return_dict=True
    )
    # The losses are float32 computations on the models' low-precision
    # logits: NumPy on the same logits agrees to float32 rounding.
    t = teacher.predict(x, verbose=0)[:, 0].astype(np.float64)
    s = student.predict(x, verbose=0)[:, 0].astype(np.float64)
    bce = np.mean(np.logaddexp(0.0, s) - y * s)
    p, q = sigmoid(t / T), sigmoid(s / T)
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert result["student_loss"] == pytest.approx(bce, rel=1e-4)
    assert result["distillation_loss"] == pytest.approx(
        T**2 * np.mean(kl), rel=1e-3, abs=1e-6
    )
