"""The Distiller's two loss arguments: resolution, math and saving.

`compile` turns whatever the user passed (None, a name, a `keras.losses`
object, a function, a lambda, a callable object) into one `Loss` object;
the soft-target term is computed here in float32 with `keras.ops`, and the
compile arguments are serialized only when the Distiller is saved, with a
message that says what loading will need.
"""

import re
import types

import keras
from keras import ops

from tfkd import losses as losses_module

# Keras' cross-entropies default to `from_logits=False`; on logits they
# clip the values into [eps, 1 - eps] and train on nonsense.
_PROBABILITY_CROSSENTROPIES = (
    keras.losses.binary_crossentropy,
    keras.losses.binary_focal_crossentropy,
    keras.losses.categorical_crossentropy,
    keras.losses.categorical_focal_crossentropy,
    keras.losses.sparse_categorical_crossentropy,
)


def compile_losses(student_loss_fn, distillation_loss_fn, kwargs):
    """The Distiller's two `compile` loss arguments, resolved.

    Args:
        student_loss_fn: what `compile` got as `student_loss_fn`.
        distillation_loss_fn: what it got as `distillation_loss_fn`.
        kwargs: its other keyword arguments.

    Returns:
        `(student_loss, distillation_loss)`, each None or a `Loss`.

    Raises:
        ValueError: on a `loss` keyword, which the Distiller does not take.
    """
    if "loss" in kwargs:
        raise ValueError(
            "`Distiller.compile` takes `student_loss_fn` and "
            "`distillation_loss_fn`, not `loss`. "
            f"Received: loss={kwargs['loss']!r}"
        )
    return (
        as_loss(student_loss_fn, "student_loss_fn"),
        as_loss(distillation_loss_fn, "distillation_loss_fn"),
    )


def as_loss(loss, argument):
    """Resolves a loss argument to None or one `keras.losses.Loss` object.

    Strings and functions are wrapped, so `"kl_divergence"` and
    `keras.losses.KLDivergence()` compute the same value: both receive
    probabilities and both are reduced the same way.

    Args:
        loss: None, a `keras.losses` name, a `keras.losses.Loss`, or a
            callable `(y_true, y_pred) -> per-example loss` (a function, a
            lambda or an object with `__call__`).
        argument: str. `"student_loss_fn"` or `"distillation_loss_fn"`.

    Returns:
        None or a `keras.losses.Loss`.

    Raises:
        TypeError: for anything else.
        ValueError: for an unknown name, or a cross-entropy whose
            `from_logits` does not match what it will receive.

    Example:

    ```python
    as_loss(lambda t, s: keras.ops.square(t - s), "distillation_loss_fn")
    ```
    """
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            raise ValueError(
                f"Unknown loss for `{argument}`: {loss!r}. Pass a "
                "`keras.losses` name, a `keras.losses.Loss` or a callable."
            ) from None
    if loss is not None and not callable(loss):
        raise TypeError(
            f"`{argument}` must be None, a string, a `keras.losses.Loss` or "
            f"a callable. Received: {argument}={loss!r}"
        )
    _check_from_logits(loss, argument)
    if loss is None or isinstance(loss, keras.losses.Loss):
        return loss
    return _FunctionLoss(loss)


def _check_from_logits(loss, argument):
    if loss is None:
        return
    if isinstance(loss, keras.losses.Loss):
        from_logits = loss.get_config().get("from_logits")
    elif loss in _PROBABILITY_CROSSENTROPIES:
        from_logits = False
    else:
        return
    # The student loss gets logits; any distillation loss that is not a
    # `LogitDistillationLoss` gets probabilities.
    wanted = argument == "student_loss_fn"
    if from_logits is None or from_logits == wanted:
        return
    name = getattr(loss, "name", None) or loss.__name__
    if wanted:
        fix = (
            "The student outputs logits: pass e.g. "
            "`keras.losses.BinaryCrossentropy(from_logits=True)`."
        )
    else:
        fix = (
            "A distillation loss that is not a "
            "`tfkd.losses.LogitDistillationLoss` receives probabilities: "
            "pass `from_logits=False`, or leave it out for the default."
        )
    raise ValueError(
        f"`{argument}` must use `from_logits={wanted}`. {fix} "
        f"Received: {argument}={name} with from_logits={from_logits}"
    )


class _FunctionLoss(keras.losses.Loss):
    """Gives a per-example loss callable the reduction of a `Loss` object.

    Not serialized itself: the compile config stores what the user passed.
    """

    def __init__(self, fn):
        super().__init__(name=_scope_name(fn))
        self.fn = fn

    def call(self, y_true, y_pred):
        # As Keras does for `compile(loss=fn)`: labels of shape (batch,)
        # meet logits of shape (batch, 1) instead of broadcasting to
        # (batch, batch).
        y_true, y_pred = _same_rank(y_true, y_pred)
        y_pred, y_true = _same_rank(y_pred, y_true)
        return self.fn(y_true, y_pred)


def _same_rank(a, b):
    """`(a, b)` with a trailing axis of 1 on `a` matched to `b`'s rank."""
    if len(a.shape) != len(b.shape) + 1 or a.shape[-1] != 1:
        return a, b
    if len(b.shape) == 1:
        return a, ops.expand_dims(b, axis=-1)
    return ops.squeeze(a, axis=-1), b


def _scope_name(fn):
    # Keras opens a name scope named after the loss; "<lambda>" or a
    # leading underscore is not a valid one, and the failed scope stays
    # open for the rest of the process.
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return re.sub(r"[^A-Za-z0-9_.]", "", name).lstrip("_") or "loss"


def default_student_loss(kind):
    """The hard-label loss of an output kind, on logits.

    Args:
        kind: str. A resolved kind.

    Returns:
        A `keras.losses.Loss`.
    """
    if kind == "binary":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if kind == "categorical":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if kind == "regression":
        return keras.losses.MeanSquaredError()
    return losses_module.ListwiseSoftmaxCrossEntropy()


def default_distillation_loss(kind):
    """The soft-target loss of an output kind.

    Args:
        kind: str. A resolved kind.

    Returns:
        A `keras.losses.Loss`.
    """
    if kind == "binary":
        return losses_module.BinaryKLDivergence()
    if kind == "regression":
        return keras.losses.MeanSquaredError(name="teacher_mse")
    return losses_module.CategoricalKLDivergence()


def soft_target_loss(kind, fn, teacher_logits, student_logits, temperature,
                     sample_weight=None):
    """`T**2 * fn(t / T, s / T)` (probabilities unless `fn` takes logits).

    Args:
        kind: str. The resolved output kind.
        fn: `keras.losses.Loss`. The distillation loss.
        teacher_logits: float32 tensor.
        student_logits: float32 tensor of the same shape.
        temperature: float32 scalar tensor.
        sample_weight: per-example weights or None.

    Returns:
        A float32 scalar. For `"regression"`, `fn(t, s)` without `T`.
    """
    if kind == "regression":
        loss = fn(teacher_logits, student_logits, sample_weight=sample_weight)
        return ops.cast(loss, "float32")
    t = teacher_logits / temperature
    s = student_logits / temperature
    if not isinstance(fn, losses_module.LogitDistillationLoss):
        t, s = _probabilities(kind, t), _probabilities(kind, s)
    loss = fn(t, s, sample_weight=sample_weight)
    return ops.cast(loss, "float32") * temperature**2


def unscale(value):
    """Undoes the per-replica 1/num_replicas factor, for reporting.

    Args:
        value: a loss reduced over one replica's share of the batch.

    Returns:
        The loss over the replica's own batch.
    """
    if keras.backend.backend() != "tensorflow":
        # Keras' JAX and torch steps see the global batch: nothing to undo.
        return value
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    return value * ops.cast(strategy.num_replicas_in_sync, value.dtype)


def _probabilities(kind, logits):
    if kind == "binary":
        # [1 - sigmoid(z), sigmoid(z)]: a softmax over one logit is always 1.
        return ops.concatenate(
            [ops.sigmoid(-logits), ops.sigmoid(logits)], axis=-1
        )
    return ops.softmax(logits, axis=-1)


class CompileArgs:
    """What `compile` was given, serialized only when the model is saved.

    A plain object on purpose: Keras tracks a dict or list set on a model
    as new state (refused once the model is built, as on load), and
    serializing in `compile` would refuse a callable the user never saves.

    Args:
        **values: the compile arguments, as the user passed them.
    """

    def __init__(self, **values):
        self.values = values

    def serialize(self):
        """The arguments as JSON-ready configs.

        Raises:
            ValueError: for a lambda loss, which Keras reloads as bare
                bytecode that has lost the names it uses.
            TypeError: for an object Keras cannot serialize.
        """
        serialized = {}
        for key, value in self.values.items():
            if isinstance(value, types.LambdaType) and (
                value.__name__ == "<lambda>"
            ):
                raise ValueError(
                    f"Cannot save the Distiller: `{key}` is a lambda. Keras "
                    "reloads a lambda as bare bytecode that has lost the "
                    "names it uses (`ops`, `keras`: NameError when it is "
                    "called). " + _SAVE_FIX + f" Received: {key}={value!r}"
                )
            try:
                serialized[key] = keras.saving.serialize_keras_object(value)
            except TypeError as error:
                raise TypeError(
                    f"Cannot save the Distiller: `{key}` cannot be "
                    f"serialized ({error}). " + _SAVE_FIX +
                    f" Received: {key}={value!r}"
                ) from error
        return serialized


_SAVE_FIX = (
    "Use a named function or a `keras.losses.Loss` subclass with "
    "`get_config()`, decorated with "
    "`@keras.saving.register_keras_serializable()`, or save the student "
    "alone (`distiller.student.save(path)`)."
)


def deserialize_compile_args(config):
    """Rebuilds the compile arguments; a missing custom loss is named.

    Args:
        config: dict of serialized compile arguments.

    Returns:
        A dict of live objects.

    Raises:
        TypeError: when a function or class is neither registered nor in
            `custom_objects`, with the `load_model` call that fixes it.
    """
    restored = {}
    for key, value in config.items():
        try:
            restored[key] = keras.saving.deserialize_keras_object(value)
        except TypeError as error:
            name = _serialized_name(value)
            raise TypeError(
                f"Cannot restore the Distiller's `{key}`: {error} Pass it "
                f"to `keras.models.load_model(path, custom_objects="
                f"{{'{name}': {name}}})`, or decorate it with "
                "`@keras.saving.register_keras_serializable()` before "
                "saving."
            ) from error
    return restored


def _serialized_name(config):
    if not isinstance(config, dict):
        return "name"
    if config.get("class_name") == "function":
        return str(config.get("config"))
    return str(config.get("class_name", "name"))
