"""Every use of a private Keras / TensorFlow / TFMOT internal, with why.

Public APIs do not expose these; keeping them here means a version bump
that changes one breaks one function, named in the failing test.
"""

import sys

import keras
from keras import ops


def producer(tensor):
    """The operation that produced a symbolic tensor and its inputs.

    Keras has no public way to walk a Functional graph backwards from an
    output; `_keras_history` and `_inbound_nodes` are what
    `keras.Model.summary` and `plot_model` use.

    Args:
        tensor: a `KerasTensor` from a Functional model.

    Returns:
        `(operation, input_tensors)`, or `(None, [])` for a graph input
        or a tensor with no history.
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, []
    operation = history.operation
    node = operation._inbound_nodes[history.node_index]
    return operation, list(node.input_tensors)


def all_layers(layer):
    """Every layer inside `layer`, recursively, each once, not itself.

    Keras has no public recursive listing (`Model.layers` stops at the
    first level, and a custom layer's sublayers are not listed at all);
    `_flatten_layers` is what `Layer.weights` is computed from.

    Args:
        layer: a `keras.layers.Layer` or `keras.Model`.

    Returns:
        A list of layers.
    """
    return list(layer._flatten_layers(include_self=False, recursive=True))


def is_functional(model):
    """True for a Functional model (built from `keras.Input`s).

    `keras.Model(inputs, outputs)` returns an instance of the private
    `Functional` class; it is the only kind `keras.models.clone_model`
    accepts a `call_function` for.

    Args:
        model: any object.

    Returns:
        bool.
    """
    from keras.src.models.functional import Functional

    return isinstance(model, Functional)


def first_local_batch(strategy, iterator, data_batch):
    """One replica's slice of the first batch, for a symbolic build.

    Keras 3.15's `_maybe_symbolic_build` reduces the first batch with
    `strategy.reduce("MEAN", batch)`, which fails under
    MultiWorkerMirroredStrategy ("Attempt to convert a value
    (PerReplica...)", keras-team/keras#20585). Only shapes and dtypes are
    needed, so one replica's slice will do.

    Args:
        strategy: the model's `tf.distribute.Strategy`.
        iterator: Keras' epoch iterator, or None.
        data_batch: a batch already at hand, or None.

    Returns:
        `(iterator, data_batch)` to pass on to `_maybe_symbolic_build`.
    """
    if iterator is None or not _is_multi_worker(strategy):
        return iterator, data_batch
    for _, _, it in iterator:
        data_batch = keras.tree.map_structure(
            lambda v: strategy.experimental_local_results(v)[0], next(it)
        )
        break
    return None, data_batch


class FirstLocalBatchBuild:
    """Mixin for a `keras.Model`: build from one replica's first batch.

    keras-team/keras#20585: Keras 3.15 builds a model from its first batch
    in the private `_maybe_symbolic_build`, which fails under
    MultiWorkerMirroredStrategy on a per-replica batch; overriding that
    hook is the only place to hand it one replica's slice
    (`first_local_batch`).

    Example:

    ```python
    class Distiller(FirstLocalBatchBuild, keras.Model):
        ...
    ```
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "distribute_strategy", None)
        iterator, data_batch = first_local_batch(
            strategy, iterator, data_batch
        )
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch
        )


def reducible_logs(strategy, logs):
    """Step logs that Keras 3.15 can reduce across workers.

    Under MultiWorkerMirroredStrategy Keras reduces step logs with
    `reduce("MEAN", v, axis=0)`, which rejects scalars
    (keras-team/keras#20585); a length-1 axis reduces to the scalar.

    Args:
        strategy: the model's `tf.distribute.Strategy`.
        logs: dict of scalar tensors.

    Returns:
        The logs, each reshaped to `(1,)` under that strategy.
    """
    if not _is_multi_worker(strategy):
        return logs
    return {key: ops.reshape(value, (1,)) for key, value in logs.items()}


def is_validation_pass(evaluate_kwargs):
    """True when `fit` itself calls `evaluate` on its validation data.

    Keras 3.15's `fit` calls `evaluate(..., _use_cached_eval_dataset=True)`
    every epoch; a private keyword is the only sign of it. The Distiller
    checks validation labels once in `fit`, not again every epoch.

    Args:
        evaluate_kwargs: dict. The extra keyword arguments `evaluate` got.

    Returns:
        bool.
    """
    return bool(evaluate_kwargs.get("_use_cached_eval_dataset"))


def update_compiled_metrics(model, y, y_pred, row_weight, sample_weight):
    """Updates `compile(metrics=...)` with one weight, `weighted_metrics`
    with another.

    Keras' `CompileMetrics.update_state` gives `metrics` no weight at all,
    so a row without a label (a transfer-set row) would count in them;
    the compiled metrics and their two lists (`_compile_metrics`,
    `_flat_metrics`, `_flat_weighted_metrics`) are private.

    Args:
        model: a compiled single-output `keras.Model`.
        y: the labels.
        y_pred: the model's predictions.
        row_weight: weights for `metrics` (e.g. 0/1: has a label), or None.
        sample_weight: weights for `weighted_metrics`, or None.
    """
    compiled = model._compile_metrics
    if compiled is None:
        return
    if not compiled.built:
        compiled.build(y, y_pred)
    for metrics, weight in ((compiled._flat_metrics, row_weight),
                            (compiled._flat_weighted_metrics, sample_weight)):
        for metric in metrics:
            if metric:
                metric.update_state(y, y_pred, sample_weight=weight)


def _is_multi_worker(strategy):
    # Without TensorFlow imported there is no strategy to look for; the
    # JAX backend runs where TensorFlow is not installed at all.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    )


def set_initial_epoch(model, epoch):
    """Makes `fit` start at `epoch` (None: at its `initial_epoch` argument).

    Keras 3.15's `fit` reads the private `_initial_epoch` right after
    `on_train_begin`; it is how `keras.callbacks.BackupAndRestore` moves
    the start epoch, and a callback has no public way to do it.

    Args:
        model: a `keras.Model` inside `fit`.
        epoch: int or None.
    """
    model._initial_epoch = epoch


def skip_batches(model, batches):
    """Makes `fit`'s next steps read `batches` batches and train nothing.

    Keras 3.15's TensorFlow `fit` looks `model.train_function` up at every
    step and calls it on the data iterator; a callback has no public way
    to skip steps. Each skipped step takes `steps_per_execution` batches
    (`StopIteration` when there are none ends the epoch, as a real step
    does). The real function comes back after the last skipped step, on
    `stop_skipping`, or when called on another iterator (a later `fit`),
    so an interrupted `fit` never leaves a model that trains nothing.

    Args:
        model: a `keras.Model` inside `fit`, TensorFlow backend.
        batches: int. How many batches to skip.
    """
    original = model.train_function
    state = {"read": 0, "iterator": None}

    def skip(iterator):
        if state["iterator"] is not None and state["iterator"] is not iterator:
            model.train_function = original
            return original(iterator)
        state["iterator"] = iterator
        for index in range(model.steps_per_execution):
            try:
                next(iterator)
            except StopIteration:
                if index == 0:
                    raise
                break
            state["read"] += 1
        if state["read"] >= batches:
            model.train_function = original
        return {}

    skip.original = original
    model.train_function = skip


def stop_skipping(model):
    """Gives back the step function `skip_batches` replaced, if it still is.

    Args:
        model: a `keras.Model`.
    """
    original = getattr(model.train_function, "original", None)
    if original is not None:
        model.train_function = original


def replay_graph(model, inputs, operation_fn, call_fn):
    """Replays a Functional model's graph with other callables per layer.

    `Functional._run_through_graph` is how Keras itself calls a Functional
    model; it is the one way to rebuild the graph in another framework
    (tf_keras, for TFMOT) without re-deriving the topology.

    Args:
        model: a Functional `keras.Model`.
        inputs: list of tensors, in `model.inputs` order.
        operation_fn: `layer -> callable` used in place of each layer.
        call_fn: `(callable, *args, **kwargs) -> output`.

    Returns:
        The outputs, in the model's output structure.
    """
    return model._run_through_graph(
        inputs, operation_fn=operation_fn, call_fn=call_fn
    )


def quantizer_range_variables(wrapper):
    """The activation range variables of a TFMOT `QuantizeWrapper`.

    TFMOT 0.8 keeps the output range (`_output_quantizer_vars`) and each
    activation's range (`_quantize_activations[i]._post_activation_vars`)
    in private attributes; setting them from data before a short fine-tune
    is what keeps QAT's int8 scales from the [-6, 6] defaults.

    Args:
        wrapper: `tfmot.quantization.keras.QuantizeWrapper`.

    Returns:
        A list of dicts of range variables (`min_var`, `max_var`), empty
        when the wrapper quantizes no activation.
    """
    variables = [getattr(wrapper, "_output_quantizer_vars", None)]
    for activation in getattr(wrapper, "_quantize_activations", []):
        variables.append(getattr(activation, "_post_activation_vars", None))
    return [v for v in variables if v]
