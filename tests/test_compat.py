"""What `tfkd/_internal/compat.py` relies on, checked against the pinned
versions.

Each entry names the `_compat` function and checks the private Keras /
TensorFlow / TFMOT names it reaches, so an upgrade that moves one fails
here with the function's name, not deep inside a training run.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfkd._internal import compat as _compat


def _functional():
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(2, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))


def check_producer():
    model = _functional()
    operation, inputs = _compat.producer(model.outputs[0])
    assert operation.name == "out"
    assert [t.shape for t in inputs] == [(None, 2)]


def check_all_layers():
    inner = _functional()
    outer_input = keras.Input((3,), name="x")
    outer = keras.Model(outer_input, inner(outer_input))
    names = {layer.name for layer in _compat.all_layers(outer)}
    assert {"hidden", "out"} <= names


def check_is_functional():
    assert _compat.is_functional(_functional())

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert not _compat.is_functional(Subclassed())


def check_first_local_batch():
    # Keras' build hook, overridden by `FirstLocalBatchBuild`.
    signature = inspect.signature(keras.Model._maybe_symbolic_build)
    assert {"iterator", "data_batch"} <= set(signature.parameters)
    assert _compat.first_local_batch(None, "it", "batch") == ("it", "batch")


def check_is_validation_pass():
    source = inspect.getsource(keras.src.backend.tensorflow.trainer
                               .TensorFlowTrainer.fit)
    assert "_use_cached_eval_dataset=True" in source


def check_update_compiled_metrics():
    model = _functional()
    model.compile(loss="mse", metrics=["mae"], weighted_metrics=["mse"])
    y = np.ones((4, 1), np.float32)
    pred = np.zeros((4, 1), np.float32)
    _compat.update_compiled_metrics(model, y, pred, None, None)
    compiled = model._compile_metrics
    assert compiled._flat_metrics and compiled._flat_weighted_metrics
    results = {k: float(v) for k, v in compiled.result().items()}
    assert results["mae"] == pytest.approx(1.0)
    assert results["mse"] == pytest.approx(1.0)


def check_set_initial_epoch():
    source = inspect.getsource(keras.src.backend.tensorflow.trainer
                               .TensorFlowTrainer.fit)
    assert "self._initial_epoch" in source
    model = _functional()
    _compat.set_initial_epoch(model, 3)
    assert model._initial_epoch == 3


def check_skip_batches():
    model = _functional()
    model.compile(loss="mse")
    model.make_train_function()
    original = model.train_function
    _compat.skip_batches(model, 1)
    assert model.train_function is not original
    _compat.stop_skipping(model)
    assert model.train_function is original


def check_replay_graph():
    model = _functional()
    seen = []

    def operation_fn(layer):
        seen.append(layer.name)
        return layer

    x = tf.ones((2, 3))
    out = _compat.replay_graph(
        model, [x], operation_fn, lambda op, *a, **k: op(*a, **k)
    )
    assert seen == ["hidden", "out"]
    np.testing.assert_allclose(np.asarray(out), np.asarray(model(x)),
                               rtol=1e-6)


def check_quantizer_range_variables():
    import tensorflow_model_optimization as tfmot
    import tf_keras

    inputs = tf_keras.Input((3,))
    outputs = tf_keras.layers.Dense(2, activation="relu")(inputs)
    annotated = tfmot.quantization.keras.quantize_annotate_model(
        tf_keras.Model(inputs, outputs)
    )
    model = tfmot.quantization.keras.quantize_apply(annotated)
    wrapper = next(
        layer for layer in model.layers
        if isinstance(layer, tfmot.quantization.keras.QuantizeWrapper)
    )
    variables = _compat.quantizer_range_variables(wrapper)
    assert variables
    for entry in variables:
        assert {"min_var", "max_var"} <= set(entry)


CHECKS = {
    "producer": check_producer,
    "all_layers": check_all_layers,
    "is_functional": check_is_functional,
    "first_local_batch": check_first_local_batch,
    "FirstLocalBatchBuild": check_first_local_batch,
    "reducible_logs": None,  # Exercised by tests/test_multiworker.py.
    "is_validation_pass": check_is_validation_pass,
    "update_compiled_metrics": check_update_compiled_metrics,
    "set_initial_epoch": check_set_initial_epoch,
    "skip_batches": check_skip_batches,
    "stop_skipping": check_skip_batches,
    "replay_graph": check_replay_graph,
    "quantizer_range_variables": check_quantizer_range_variables,
}


def test_every_compat_function_is_listed():
    public = {
        name for name, value in vars(_compat).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == _compat.__name__
    }
    assert public == set(CHECKS), (
        "Add a check for each new `_compat` function to CHECKS."
    )


@pytest.mark.parametrize(
    "name", sorted(n for n, check in CHECKS.items() if check is not None)
)
def test_private_api_still_there(name):
    try:
        CHECKS[name]()
    except Exception as e:  # noqa: BLE001 - re-raised with the name
        raise AssertionError(
            f"tfkd._internal.compat.{name} relies on a private API that the "
            f"pinned "
            f"Keras / TensorFlow / TFMOT no longer provide as expected: "
            f"{type(e).__name__}: {e}"
        ) from e
