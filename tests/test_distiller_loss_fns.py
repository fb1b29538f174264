"""Loss functions the way Keras users write them, and saving them.

Issue 11: a lambda as a loss crashed `fit` ("'<lambda>' is not a valid root
scope name") and left Keras broken for the rest of the process; a callable
object failed in `compile` (serialization).
"""

import keras
import numpy as np
import pytest
from dense_models import FEATURES
from dense_models import dense_model
from dense_models import sigmoid
from keras import ops

import tfkd

T = 2.0


def squared_gap(y_true, y_pred):
    """A plain per-example loss function, not registered with Keras."""
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


@keras.saving.register_keras_serializable(package="tfkd_tests")
def registered_squared_gap(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class SquaredGap:
    """A callable object without `get_config`."""

    def __call__(self, y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


LOSSES = {
    "function": squared_gap,
    "lambda": lambda t, s: ops.mean(ops.square(t - s), axis=-1),
    "object": SquaredGap(),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, FEATURES)).astype("float32")
    return x, (x[:, 0] > 0).astype("float32")


def _distiller(**compile_kwargs):
    distiller = tfkd.Distiller(dense_model(1), dense_model(5))
    distiller.compile(keras.optimizers.SGD(0.05), alpha=0.5, temperature=T,
                      **compile_kwargs)
    return distiller


class TestCallableLosses:
    @pytest.mark.parametrize("name", sorted(LOSSES))
    def test_as_distillation_loss(self, data, name):
        x, y = data
        distiller = _distiller(distillation_loss_fn=LOSSES[name])
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
        result = distiller.evaluate(
            x, y, batch_size=len(y), verbose=0, return_dict=True
        )
        # The loss gets probabilities [1 - p, p] at T; the mean over those
        # two columns of the squared gap is (p_t - p_s)**2. Times T**2.
        t = distiller.teacher.predict(x, verbose=0)[:, 0]
        s = distiller.student.predict(x, verbose=0)[:, 0]
        expected = T**2 * np.mean((sigmoid(t / T) - sigmoid(s / T)) ** 2)
        assert result["distillation_loss"] == pytest.approx(expected, 1e-4)

    @pytest.mark.parametrize("name", sorted(LOSSES))
    def test_as_student_loss(self, data, name):
        x, y = data
        distiller = _distiller(student_loss_fn=LOSSES[name])
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
        result = distiller.evaluate(
            x, y, batch_size=len(y), verbose=0, return_dict=True
        )
        # Labels (64,) against logits (64, 1): aligned, not broadcast.
        s = distiller.student.predict(x, verbose=0)[:, 0]
        expected = np.mean((y - s) ** 2)
        assert result["student_loss"] == pytest.approx(expected, 1e-4)

    def test_keras_still_works_after_a_lambda(self, data):
        x, y = data
        both = _distiller(
            student_loss_fn=lambda y, s: ops.mean(ops.square(y - s), -1),
            distillation_loss_fn=lambda t, s: ops.mean(ops.abs(t - s), -1),
        )
        both.fit(x, y, batch_size=16, epochs=1, verbose=0)
        history = _distiller().fit(x, y, batch_size=16, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        plain = dense_model(9)
        plain.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
        plain.fit(x, y, epochs=1, verbose=0)


class TestSavingCustomLosses:
    def test_registered_function_round_trips(self, data, tmp_path):
        x, y = data
        distiller = _distiller(distillation_loss_fn=registered_squared_gap)
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
        distiller.save(tmp_path / "d.keras")
        restored = keras.models.load_model(tmp_path / "d.keras")
        expected = distiller.evaluate(x, y, verbose=0, return_dict=True)
        actual = restored.evaluate(x, y, verbose=0, return_dict=True)
        assert actual["distillation_loss"] == pytest.approx(
            expected["distillation_loss"], rel=1e-6
        )

    def test_unregistered_function_needs_custom_objects(self, data,
                                                        tmp_path):
        x, y = data
        distiller = _distiller(student_loss_fn=squared_gap)
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
        path = tmp_path / "d.keras"
        distiller.save(path)
        with pytest.raises(TypeError, match=r"`student_loss_fn`.*"
                           r"custom_objects=\{'squared_gap': squared_gap\}"):
            keras.models.load_model(path)
        restored = keras.models.load_model(
            path, custom_objects={"squared_gap": squared_gap}
        )
        expected = distiller.evaluate(x, y, verbose=0, return_dict=True)
        actual = restored.evaluate(x, y, verbose=0, return_dict=True)
        assert actual["student_loss"] == pytest.approx(
            expected["student_loss"], rel=1e-6
        )

    @pytest.mark.parametrize(
        "name, error, fragment",
        [
            ("lambda", ValueError, "`distillation_loss_fn` is a lambda"),
            ("object", TypeError, "`distillation_loss_fn` cannot be"),
        ],
        ids=["lambda", "object"],
    )
    def test_unsaveable_loss_is_refused_at_save(self, data, tmp_path, name,
                                                error, fragment):
        x, y = data
        distiller = _distiller(distillation_loss_fn=LOSSES[name])
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
        path = tmp_path / "d.keras"
        with pytest.raises(error, match=fragment) as info:
            distiller.save(path)
        assert "register_keras_serializable" in str(info.value)
        assert not path.exists()
        distiller.student.save(tmp_path / "student.keras")
        assert (tmp_path / "student.keras").stat().st_size > 0
