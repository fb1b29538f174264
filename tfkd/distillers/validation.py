"""Checks the Distiller makes on its models and settings.

Scalars are checked in `__init__`/`compile` and the setters, models at
construction, and what can change between calls (which model is frozen)
at the start of every `fit`, so an error points at the line that made the
mistake.
"""

import contextlib
import inspect
import math

import keras

from tfkd._internal import model_utils

KINDS = ("auto", "binary", "categorical", "regression", "listwise")

# float32 rounds sigmoid(z) to exactly 1 for z >= 17 (just past
# ln(2**24) ~= 16.6). At T = 0.05 a teacher logit of 0.85 (p = 0.70)
# becomes 17, so the soft targets are already hard 0/1 labels, and the
# T**2 factor (0.0025) shrinks what is left of the soft-target loss 400-fold.
# Below it the distillation term carries nothing the hard labels do not
# (at T = 1e-30 it is exactly 0).
MIN_TEMPERATURE = 0.05


def validate_alpha(value):
    """Checks the hard-label weight.

    Args:
        value: number. The requested `alpha`.

    Returns:
        `value` as a float in [0, 1].

    Raises:
        ValueError: outside [0, 1].

    Example:

    ```python
    validate_alpha(0.2)   # 0.2
    ```
    """
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            "`alpha` is the weight of the hard-label loss and must be in "
            f"[0, 1]. Received: alpha={value}"
        )
    return value


def validate_temperature(value):
    """Checks the soft-target temperature.

    Args:
        value: number. The requested `temperature`.

    Returns:
        `value` as a finite float >= `MIN_TEMPERATURE`.

    Raises:
        ValueError: below `MIN_TEMPERATURE`, or not finite.

    Example:

    ```python
    validate_temperature(2)   # 2.0
    ```
    """
    value = float(value)
    if not (value >= MIN_TEMPERATURE and math.isfinite(value)):
        raise ValueError(
            f"`temperature` must be a finite number >= {MIN_TEMPERATURE}: "
            "below that float32 rounds the soft targets to hard 0/1 labels "
            "and the T**2 factor scales the distillation loss to nothing "
            "(1 keeps the logits as they are; 2-5 is usual). "
            f"Received: temperature={value}"
        )
    return value


def validate_kind(kind):
    """Checks an output kind.

    Args:
        kind: str. The requested kind.

    Returns:
        `kind`, one of `KINDS`.

    Raises:
        ValueError: for anything else.
    """
    if kind not in KINDS:
        raise ValueError(
            f"`kind` must be one of {KINDS}. Received: kind={kind!r}"
        )
    return kind


def check_models(teacher, student):
    """Refuses non-models, one model in both roles, and probability heads.

    Args:
        teacher: the teacher passed to the Distiller.
        student: the student passed to the Distiller.

    Raises:
        TypeError: if either is not a `keras.Model`.
        ValueError: if they are the same object, or either ends in a
            sigmoid or softmax.
    """
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"`{role}` must be a `keras.Model`. "
                f"Received: {role}={model!r} of type {type(model)}"
            )
    if teacher is student:
        raise ValueError(
            "`teacher` and `student` are the same model object: the "
            "Distiller freezes the teacher, so nothing would train. Pass "
            "a separate student (e.g. `keras.models.clone_model(teacher)` "
            f"for a same-size one). Received: teacher=student='{student.name}'"
        )
    for role, model in (("teacher", teacher), ("student", student)):
        _check_outputs_logits(model, role)


def _check_outputs_logits(model, role):
    activation = model_utils.probability_activation(model)
    if activation is None:
        return
    source = _probability_source(model, activation)
    where = f" ({source})" if source else ""
    raise ValueError(
        f"The {role} must output logits, but it applies {activation}"
        f"{where} to its output. Remove that activation (e.g. `Dense(1)` "
        "instead of `Dense(1, activation='sigmoid')`, or drop the final "
        f"`keras.ops.{activation}` / `Activation('{activation}')`); the "
        "Distiller applies the temperature-scaled sigmoid/softmax itself. "
        f"Received: {role}='{model.name}'"
    )


def _probability_source(model, activation):
    """Names the last operation applying `activation`, for the message.

    Detection is `model_utils.probability_activation`'s job; this only
    finds a name to show, so it looks at the model's own operations.
    """
    operations = getattr(model, "operations", None) or model.layers
    for operation in reversed(operations):
        if isinstance(operation, keras.Model):
            if model_utils.probability_activation(operation) == activation:
                return f"nested model '{operation.name}'"
            continue
        kind = type(operation).__name__.lower()
        applied = getattr(getattr(operation, "activation", None),
                          "__name__", None)
        if applied == activation or kind == activation.replace("_", ""):
            what = "layer" if isinstance(operation, keras.Layer) else "op"
            return f"{what} '{operation.name}'"
    return None


def static_output_shape(model):
    """The declared shape of a model's one output.

    Args:
        model: `keras.Model`.

    Returns:
        A tuple (batch axis included), or None for a model that declares
        no outputs (a subclassed model).

    Raises:
        ValueError: for a model with several outputs.
    """
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs:
        return None
    if len(outputs) != 1:
        raise ValueError(
            "The Distiller supports models with one output tensor. "
            f"Received: {model.name} with {len(outputs)} outputs."
        )
    return tuple(outputs[0].shape)


def output_shape(model, features, strategy):
    """A model's output shape: declared, or from a run on two rows.

    A subclassed model has no static output shape until it has run; it
    runs once in the strategy's scope, where its variables belong.

    Args:
        model: `keras.Model`. The student.
        features: a batch of features (arrays, tensors, dict of them).
        strategy: the `tf.distribute.Strategy` the model lives in.

    Returns:
        A tuple.
    """
    shape = static_output_shape(model)
    if shape is not None:
        return shape
    head = keras.tree.map_structure(lambda v: v[:2], features)
    head = model_utils.select_inputs(model, head, "student")
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope:
        return tuple(model(head, training=False).shape)


def check_same_shape(teacher_shape, student_shape):
    """Refuses teacher and student outputs of different shapes.

    Args:
        teacher_shape: tuple or None (unknown: not checked).
        student_shape: tuple or None.

    Raises:
        ValueError: when known dimensions differ.
    """
    if teacher_shape is None or student_shape is None:
        return
    if len(teacher_shape) != len(student_shape) or any(
        t is not None and s is not None and t != s
        for t, s in zip(teacher_shape[1:], student_shape[1:], strict=True)
    ):
        raise ValueError(
            "Teacher and student must output logits of the same shape. "
            f"Received: teacher output shape={teacher_shape}, student output "
            f"shape={student_shape}. Give the student the teacher's output "
            "layer size."
        )


def resolve_kind(kind, output_shape):
    """The kind an output shape resolves to.

    Args:
        kind: str. One of `KINDS`.
        output_shape: tuple or None.

    Returns:
        The kind, `"auto"` resolved; None while the width is unknown.

    Raises:
        ValueError: for a softmax kind over a last axis of size 1, which
            is always 1 and transfers nothing.
    """
    width = None if output_shape is None else output_shape[-1]
    if kind in ("categorical", "listwise") and width == 1:
        raise ValueError(
            f"kind={kind!r} takes a softmax over the last axis, but the "
            "models output one column: a softmax over one value is always "
            "1 and transfers nothing. Pass `kind=\"binary\"` for one "
            "sigmoid logit, or give both models one output per "
            f"{'class' if kind == 'categorical' else 'candidate'}. "
            f"Received: output shape={output_shape}"
        )
    if kind != "auto":
        return kind
    if width is None:
        return None
    return "binary" if width == 1 else "categorical"


def check_trainable_state(teacher, student):
    """Refuses a `fit` whose teacher was unfrozen or student frozen.

    The Distiller sets `teacher.trainable = False` on the model it is
    given. Unfreezing it later would give the optimizer slots for the
    teacher; freezing the student (for example by making it another
    Distiller's teacher) would make `fit` train nothing.

    Args:
        teacher: `keras.Model`.
        student: `keras.Model`.

    Raises:
        ValueError: naming the model and the fix.
    """
    if teacher.trainable:
        raise ValueError(
            f"The teacher '{teacher.name}' is trainable again "
            "(`teacher.trainable = True` after it was given to the "
            "Distiller), but the Distiller only trains the student. Set "
            "`teacher.trainable = False` before `fit`. "
            f"Received: teacher.trainable={teacher.trainable}"
        )
    if not student.trainable or (
        student.built and not student.trainable_variables
    ):
        raise ValueError(
            f"The student '{student.name}' has no trainable weights, so "
            "`fit` would change nothing. It may have been frozen by being "
            "passed as another Distiller's teacher: set "
            "`student.trainable = True` and compile again. "
            f"Received: student.trainable={student.trainable}"
        )


def strategy_of(model):
    """The model's `tf.distribute.Strategy`, or None off TensorFlow.

    Args:
        model: `keras.Model`.

    Returns:
        A strategy, or None: only the TensorFlow backend has them.
    """
    return getattr(model, "distribute_strategy", None)


def scalar_variable(value, name):
    """A non-trainable float32 scalar, as `alpha` and `temperature` are.

    float32 under any dtype policy: a mixed policy would autocast it.
    """
    return keras.Variable(value, trainable=False, dtype="float32",
                          autocast=False, name=name)


def bind_arguments(method, args, kwargs):
    """`fit`/`evaluate` arguments by name, however they were passed."""
    return dict(inspect.signature(method).bind(*args, **kwargs).arguments)
