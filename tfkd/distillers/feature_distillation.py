"""Feature distillation through a learned projection (a FitNets hint).

`FeatureDistillation` is the setting a user passes to `tfkd.Distiller`;
the functions below are the Distiller's side of it: tap the two named
layers, project the student's hidden activations to the teacher's width,
and add the weighted hint loss to the Distiller's loss.
"""

import math
from typing import Any

import keras
from keras import ops

from tfkd import teachers
from tfkd._internal import model_utils
from tfkd._internal.api_export import tfkd_export
from tfkd.distillers import loss_terms as distiller_losses

LOSSES = ("mse",)


@tfkd_export("tfkd.FeatureDistillation")
class FeatureDistillation:
    """A hint: match a student layer to a teacher layer through a projection.

    The student's hidden activations `s_h` (at `student_layer`) are mapped
    to the width of the teacher's `t_h` (at `teacher_layer`) by a Dense
    projection `W s_h + b` that the Distiller owns and trains with the
    student; the teacher's activations are a fixed target:

    ```
    feature_loss = mean((W s_h + b - stop_gradient(t_h)) ** 2)
    loss = alpha * student_loss + (1 - alpha) * distillation_loss
           + weight * feature_loss
    ```

    Activations of rank > 2 are flattened per example. The mean is over
    the features of each example, then `sum_i w_soft[i] * l[i] / N` over
    the batch, as the soft-target term is weighted (see
    `tfkd.distillers.sample_weights`). Unlike
    `keras.distillation.FeatureDistillation`,
    which needs the two layers to have the same shape, the widths may
    differ: a 16-unit student layer can learn from a 64-unit teacher layer.

    The projection is saved with the Distiller (`distiller.save`) but is
    not part of `distiller.student`, so exporting the student is
    unaffected. The student's hidden layer is read by a second call of the
    student's layers up to `student_layer`: with dropout below that layer
    the hint sees another dropout mask than the logits, and a
    `BatchNormalization` below it updates its statistics twice per step.

    Args:
        teacher_layer: str. Name of the teacher layer whose output is the
            target (`teacher.get_layer(name)`).
        student_layer: str. Name of the student layer to project.
        weight: float >= 0. Weight of `feature_loss` in the Distiller's
            loss. Defaults to `0.1`.
        loss: str. Only `"mse"`. Defaults to `"mse"`.

    Raises:
        TypeError: if a layer name is not a str or `weight` not a number.
        ValueError: on an empty layer name, a `weight` that is negative or
            not finite, or another `loss`.

    Example:

    ```python
    hint = tfkd.FeatureDistillation(
        teacher_layer="dense_2", student_layer="dense_0", weight=0.1
    )
    distiller = tfkd.Distiller(
        teacher=teacher, student=student, feature_distillation=hint
    )
    distiller.compile(optimizer="adam", alpha=0.2, temperature=2.0)
    ```

    References:
        - [Romero et al., 2015](https://arxiv.org/abs/1412.6550) (FitNets).
    """

    def __init__(self, teacher_layer: str, student_layer: str,
                 weight: float = 0.1, loss: str = "mse") -> None:
        self.teacher_layer = _layer_name(teacher_layer, "teacher_layer")
        self.student_layer = _layer_name(student_layer, "student_layer")
        self.weight = _weight(weight)
        if loss not in LOSSES:
            raise ValueError(
                f"`loss` must be one of {LOSSES}. Received: loss={loss!r}"
            )
        self.loss = loss

    def get_config(self) -> dict[str, Any]:
        return {
            "teacher_layer": self.teacher_layer,
            "student_layer": self.student_layer,
            "weight": self.weight,
            "loss": self.loss,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FeatureDistillation":
        return cls(**dict(config))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"FeatureDistillation({args})"


def _layer_name(value, argument):
    if not isinstance(value, str):
        raise TypeError(
            f"`{argument}` must be a layer name (str). "
            f"Received: {argument}={value!r} of type {type(value).__name__}"
        )
    if not value:
        raise ValueError(
            f"`{argument}` must be a non-empty layer name. "
            f"Received: {argument}={value!r}"
        )
    return value


def _weight(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            "`weight` must be a number >= 0. "
            f"Received: weight={value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(
            f"`weight` must be a finite number >= 0. Received: weight={value}"
        )
    return value


class FeatureTaps:
    """The tapped models and the projection of one Distiller's hint.

    A plain object on purpose: Keras would track models set on the
    Distiller as layers and save their (shared) weights twice.

    Args:
        config: `FeatureDistillation`.
        teacher: `keras.Model`. Functional or Sequential.
        student: `keras.Model`. Functional or Sequential.
    """

    def __init__(self, config, teacher, student):
        self.config = config
        teacher_hidden = _layer_output(teacher, config.teacher_layer, "teacher")
        student_hidden = _layer_output(student, config.student_layer, "student")
        # Only the student's hidden layer: its logits come from the
        # Distiller's own forward pass.
        self.teacher = keras.Model(
            teacher.input, [teacher.output, teacher_hidden],
            name=f"{teacher.name}_features",
        )
        self.student = keras.Model(
            student.input, student_hidden, name=f"{student.name}_features"
        )
        self.teacher_width = _width(teacher_hidden, config.teacher_layer)
        self.student_width = _width(student_hidden, config.student_layer)
        # float32 under any dtype policy, as the Distiller's losses are.
        self.projection = keras.layers.Dense(
            self.teacher_width, dtype="float32", name="feature_projection"
        )
        self.projection.build((None, self.student_width))
        self.loss_fn = keras.losses.MeanSquaredError(name="feature_mse")


def attach(distiller, config):
    """Sets a Distiller's hint: the taps, the projection, the tracker.

    `feature_distillation` (the config) and `_feature_taps` (None without
    a hint) are always set; with a hint the Distiller also tracks
    `feature_projection` (trained and saved with it) and
    `feature_loss_tracker` (logged as `feature_loss`).

    Args:
        distiller: `tfkd.Distiller`, its teacher and student set.
        config: `FeatureDistillation` or None.

    Raises:
        TypeError: if `config` is not a `FeatureDistillation`.
        ValueError: for an `Ensemble` or `CachedLogits` teacher, a
            subclassed model, a missing layer name, or a layer without one
            output of known width.
    """
    distiller.feature_distillation = config
    distiller._feature_taps = _taps(config, distiller.teacher,
                                    distiller.student)
    if distiller._feature_taps is None:
        return
    distiller.feature_projection = distiller._feature_taps.projection
    distiller.feature_loss_tracker = keras.metrics.Mean(name="feature_loss")


def _taps(config, teacher, student):
    if config is None:
        return None
    if not isinstance(config, FeatureDistillation):
        raise TypeError(
            "`feature_distillation` must be a `tfkd.FeatureDistillation` "
            f"or None. Received: feature_distillation={config!r}"
        )
    if isinstance(teacher, (teachers.Ensemble, teachers.CachedLogits)):
        raise ValueError(
            "Feature distillation matches one teacher layer: a "
            "`tfkd.teachers.Ensemble` averages several models and "
            "`CachedLogits` has no layers. Use one teacher model for "
            "feature distillation. Received: teacher of type "
            f"{type(teacher).__name__}"
        )
    return FeatureTaps(config, teacher, student)


def _layer_output(model, name, role):
    if model_utils.input_structure(model) is None:
        raise ValueError(
            f"Feature distillation taps a layer of the {role}, which needs "
            "a Functional or Sequential model (a subclassed model has no "
            f"graph of layers to tap). Rebuild the {role} with "
            "`keras.Model(inputs, outputs)`. Received: "
            f"{role} '{model.name}' of type {type(model).__name__}"
        )
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise ValueError(
            f"The {role} '{model.name}' has no layer named {name!r}. Pass "
            f"one of its layers as `{role}_layer`: {names}"
        )
    try:
        output = model.get_layer(name).output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"In the {role} '{model.name}', layer {name!r}: {error}"
        ) from error
    if not isinstance(output, keras.KerasTensor):
        raise ValueError(
            f"The {role} layer {name!r} must have one output tensor. "
            f"Received: {output!r}"
        )
    return output


def _width(tensor, name):
    dims = tuple(tensor.shape)[1:]
    if any(d is None for d in dims):
        raise ValueError(
            f"Layer {name!r} must have a known size per example to be "
            f"projected. Received: shape={tuple(tensor.shape)}"
        )
    return math.prod(dims)


def teacher_outputs(distiller, x):
    """The teacher's float32 logits and hidden activations (or None).

    Args:
        distiller: `tfkd.Distiller`.
        x: the batch's features.

    Returns:
        `(logits, hidden)`; `hidden` is None without a hint. Neither
        carries a gradient.
    """
    taps = distiller._feature_taps
    teacher_x = model_utils.select_inputs(distiller.teacher, x, "teacher")
    if taps is None:
        logits, hidden = distiller.teacher(teacher_x, training=False), None
    else:
        logits, hidden = taps.teacher(teacher_x, training=False)
        hidden = ops.stop_gradient(_flat(hidden, taps.teacher_width))
    return ops.cast(ops.stop_gradient(logits), "float32"), hidden


def add_feature_loss(distiller, loss, x, teacher_hidden, sample_weight,
                     training):
    """`loss + weight * feature_loss`, tracked as `feature_loss`.

    Args:
        distiller: `tfkd.Distiller`.
        loss: float32 scalar. The Distiller's loss without the hint.
        x: the batch's features.
        teacher_hidden: from `teacher_outputs`.
        sample_weight: the soft-target weights, or None.
        training: bool. Passed to the student's layers.

    Returns:
        The loss, unchanged without a hint.
    """
    taps = distiller._feature_taps
    if taps is None:
        return loss
    student_x = model_utils.select_inputs(distiller.student, x, "student")
    hidden = _flat(taps.student(student_x, training=training),
                   taps.student_width)
    projected = taps.projection(hidden)
    feature = ops.cast(
        taps.loss_fn(teacher_hidden, projected, sample_weight=sample_weight),
        "float32",
    )
    distiller.feature_loss_tracker.update_state(
        distiller_losses.unscale(feature)
    )
    return loss + taps.config.weight * feature


def _flat(tensor, width):
    return ops.reshape(ops.cast(tensor, "float32"), (-1, width))


def trained_variables(distiller):
    """What the optimizer updates: the student and the projection.

    Args:
        distiller: `tfkd.Distiller`.

    Returns:
        list of variables.
    """
    variables = list(distiller.student.trainable_variables)
    if distiller._feature_taps is not None:
        variables += distiller._feature_taps.projection.trainable_variables
    return variables
