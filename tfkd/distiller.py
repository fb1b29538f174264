"""The Distiller: a `keras.Model` that trains a student on a teacher's
soft targets."""

import math

import keras
import tensorflow as tf
from keras import ops

from tfkd import callbacks as callbacks_module
from tfkd import losses as losses_module
from tfkd.api_export import tfkd_export

KINDS = ("auto", "binary", "categorical", "regression", "listwise")
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid", "log_softmax")


@tfkd_export("tfkd.Distiller")
class Distiller(keras.Model):
    """Distils a frozen teacher into a student with `fit`.

    The student is trained on a mix of the hard labels and the teacher's soft
    targets at temperature `T`:

    ```
    loss = alpha * student_loss(y, s) + (1 - alpha) * T**2 * D(t / T, s / T)
    ```

    where `t` and `s` are teacher and student logits. `D` depends on the
    output kind:

    - `"binary"`: one sigmoid logit per example (a CTR head); `D` is the
      Bernoulli KL of `sigmoid(t/T)` and `sigmoid(s/T)`.
    - `"categorical"`: `D` is the softmax KL over the last axis.
    - `"listwise"`: scores over a list of candidates; `D` is the softmax KL
      over the list.
    - `"regression"`: a rating; `D` is the MSE between the two predictions
      and `T` is not applied.
    - `"auto"`: `"binary"` when the last output dimension is 1, else
      `"categorical"`.

    The teacher is frozen: it is always called with `training=False` (a
    Dropout teacher gives the same targets every step) and no gradient reaches
    it. `call` and `predict` return the student's logits, and metrics passed
    to `compile` are computed on them against the hard labels. Training and
    evaluation both report `loss`, `student_loss` and `distillation_loss`.

    Code written for the keras.io distillation recipe runs unchanged: a
    distillation loss that is not a `tfkd.losses.LogitDistillationLoss` (for
    example `keras.losses.KLDivergence()` or the string `"kl_divergence"`) is
    given teacher and student probabilities at temperature `T` and scaled by
    `T**2`; a binary output is expanded to the two-class distribution
    `[1 - p, p]` so that such a loss still transfers something.

    Args:
        teacher: `keras.Model`. The trained teacher; it must output logits.
        student: `keras.Model`. The student; it must output logits of the
            same shape as the teacher's.
        kind: str. One of `"auto"`, `"binary"`, `"categorical"`,
            `"regression"`, `"listwise"`. Defaults to `"auto"`.
        name: str. Name of the model. Defaults to `"distiller"`.

    Raises:
        TypeError: if `teacher` or `student` is not a `keras.Model`.
        ValueError: on an unknown `kind`, outputs of different shapes, or a
            model that ends in a softmax or sigmoid.

    Example:

    ```python
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(
        optimizer="adam",
        metrics=[keras.metrics.AUC(from_logits=True)],
        alpha=0.1,
        temperature=3.0,
    )
    distiller.fit(train_ds, validation_data=val_ds, epochs=5)
    ```

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
    """

    def __init__(self, teacher, student, kind="auto", name="distiller", **kw):
        super().__init__(name=name, **kw)
        for role, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, keras.Model):
                raise TypeError(
                    f"`{role}` must be a `keras.Model`. "
                    f"Received: {role}={model!r} of type {type(model)}"
                )
            _check_outputs_logits(model, role)
        if kind not in KINDS:
            raise ValueError(
                f"`kind` must be one of {KINDS}. Received: kind={kind!r}"
            )
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        self.kind = kind
        _check_same_shape(_static_output_shape(teacher),
                          _static_output_shape(student))
        self._resolved_kind = _resolve_kind(kind, _static_output_shape(student))
        self._alpha = keras.Variable(
            0.1, trainable=False, dtype="float32", name="alpha"
        )
        self._temperature = keras.Variable(
            3.0, trainable=False, dtype="float32", name="temperature"
        )
        self._alpha_value, self._temperature_value = 0.1, 3.0
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self._compile_args = None

    @property
    def alpha(self):
        """Weight of the hard-label loss, in [0, 1]."""
        return self._alpha_value

    @alpha.setter
    def alpha(self, value):
        # The Python mirror keeps configs free of float32 rounding.
        self._alpha_value = _validate_alpha(value)
        self._alpha.assign(self._alpha_value)

    @property
    def temperature(self):
        """Softmax/sigmoid temperature of the soft targets, > 0."""
        return self._temperature_value

    @temperature.setter
    def temperature(self, value):
        self._temperature_value = _validate_temperature(value)
        self._temperature.assign(self._temperature_value)

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=0.1,
        temperature=3.0,
        **kwargs,
    ):
        """Configures the Distiller for training.

        Args:
            optimizer: str or `keras.optimizers.Optimizer`. Updates the
                student. Defaults to `"adam"`.
            metrics: list of metrics computed on the student's logits against
                the hard labels. Defaults to `None`.
            student_loss_fn: loss on `(y, student_logits)`. Defaults to binary
                cross-entropy from logits (binary), sparse categorical
                cross-entropy from logits (categorical), MSE (regression) or
                `tfkd.losses.ListwiseSoftmaxCrossEntropy` (listwise).
            distillation_loss_fn: loss on the soft targets; see the class
                docstring for what it receives. Defaults to
                `tfkd.losses.BinaryKLDivergence`,
                `tfkd.losses.CategoricalKLDivergence` or MSE by kind.
            alpha: float in [0, 1]. Weight of `student_loss`; the soft targets
                get `1 - alpha`. Defaults to `0.1`.
            temperature: float > 0. Defaults to `3.0`.
            **kwargs: passed to `keras.Model.compile` (e.g.
                `steps_per_execution`, `jit_compile`). `loss` is not accepted.

        Raises:
            ValueError: on `alpha` outside [0, 1], `temperature <= 0`, or a
                `loss` argument.
        """
        if "loss" in kwargs:
            raise ValueError(
                "`Distiller.compile` takes `student_loss_fn` and "
                "`distillation_loss_fn`, not `loss`. "
                f"Received: loss={kwargs['loss']!r}"
            )
        self.alpha = alpha
        self.temperature = temperature
        self.student_loss_fn = _as_loss(student_loss_fn, "student_loss_fn")
        self.distillation_loss_fn = _as_loss(
            distillation_loss_fn, "distillation_loss_fn"
        )
        # Kept serialized: a dict holding metric objects would be tracked as
        # new state, which Keras forbids once the model is built (on load).
        serialize = keras.saving.serialize_keras_object
        self._compile_args = {
            "metrics": serialize(metrics),
            "student_loss_fn": serialize(student_loss_fn),
            "distillation_loss_fn": serialize(distillation_loss_fn),
            "kwargs": serialize(kwargs),
        }
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def build(self, input_shape):
        for model in (self.teacher, self.student):
            if not model.built:
                model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def fit(self, *args, callbacks=None, **kwargs):
        """Trains the student; see `keras.Model.fit`.

        Adds `tfkd.callbacks.RaiseOnNaN` unless `callbacks` has one, so a NaN
        loss stops training with an error that names the batch.
        """
        callbacks = list(callbacks or [])
        if not any(isinstance(c, callbacks_module.RaiseOnNaN)
                   for c in callbacks):
            callbacks.append(callbacks_module.RaiseOnNaN())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 builds from `strategy.reduce("MEAN", batch)`, which fails
        # under MultiWorkerMirroredStrategy ("Attempt to convert a value
        # (PerReplica...)", keras-team/keras#20585). Only shapes and dtypes
        # are needed, so one replica's slice of the first batch will do.
        strategy = self.distribute_strategy
        if iterator is not None and isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            for _, _, it in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0],
                    next(it),
                )
                break
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch
        )

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_losses(x, y, y_pred, sample_weight)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.student.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._step_logs(x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        self._compute_losses(x, y, y_pred, sample_weight)
        return self._step_logs(x, y, y_pred, sample_weight)

    def _step_logs(self, x, y, y_pred, sample_weight):
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if isinstance(
            self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            # Keras 3.15 reduces step logs across workers with
            # `reduce("MEAN", v, axis=0)`, which rejects scalars
            # (keras-team/keras#20585); a length-1 axis reduces to the scalar.
            logs = {k: ops.reshape(v, (1,)) for k, v in logs.items()}
        return logs

    def _compute_losses(self, x, y, y_pred, sample_weight):
        """The one loss computation shared by training and evaluation.

        Each loss term is a `keras.losses.Loss` call, which averages over the
        replica's batch and divides by the number of replicas, so that summing
        gradients across replicas gives the global-batch mean. The trackers
        record the unscaled values.
        """
        if y is None:
            raise ValueError(
                "The Distiller needs hard labels: pass `(x, y)` or "
                "`(x, y, sample_weight)` batches. To train on the teacher's "
                "soft targets alone, pass any labels and set `alpha=0`."
            )
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        _check_same_shape(tuple(teacher_logits.shape), tuple(y_pred.shape))
        kind = self._kind_for(y_pred)
        student_fn, distill_fn = self._loss_fns(kind)
        student_loss = student_fn(y, y_pred, sample_weight=sample_weight)
        distillation_loss = self._distillation_loss(
            kind, distill_fn, teacher_logits, y_pred, sample_weight
        )
        alpha = ops.cast(self._alpha, student_loss.dtype)
        loss = alpha * student_loss + (1.0 - alpha) * distillation_loss
        self.student_loss_tracker.update_state(_unscale(student_loss))
        self.distillation_loss_tracker.update_state(
            _unscale(distillation_loss)
        )
        self._loss_tracker.update_state(_unscale(loss))
        return loss

    def _distillation_loss(self, kind, fn, teacher_logits, y_pred, weight):
        if kind == "regression":
            return fn(teacher_logits, y_pred, sample_weight=weight)
        temperature = ops.cast(self._temperature, y_pred.dtype)
        t = teacher_logits / temperature
        s = y_pred / temperature
        if not isinstance(fn, losses_module.LogitDistillationLoss):
            t = _probabilities(kind, t)
            s = _probabilities(kind, s)
        return fn(t, s, sample_weight=weight) * temperature**2

    def _kind_for(self, y_pred):
        if self._resolved_kind is None:
            self._resolved_kind = _resolve_kind(self.kind, tuple(y_pred.shape))
        return self._resolved_kind

    def _loss_fns(self, kind):
        if self._compile_args is None:
            raise RuntimeError(
                "Call `Distiller.compile()` before training or evaluating."
            )
        student_fn = self.student_loss_fn or _default_student_loss(kind)
        distill_fn = self.distillation_loss_fn or _default_distill_loss(kind)
        # Keep the defaults so every traced step reuses the same objects.
        self.student_loss_fn, self.distillation_loss_fn = student_fn, distill_fn
        return student_fn, distill_fn

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student),
                "kind": self.kind,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for role in ("teacher", "student"):
            config[role] = keras.saving.deserialize_keras_object(config[role])
        return cls(**config)

    def get_compile_config(self):
        if self._compile_args is None:
            return {}
        return {
            "optimizer": keras.saving.serialize_keras_object(self.optimizer),
            **self._compile_args,
            "alpha": self.alpha,
            "temperature": self.temperature,
        }

    def compile_from_config(self, config):
        config = dict(keras.saving.deserialize_keras_object(config))
        kwargs = config.pop("kwargs", None) or {}
        self.compile(**config, **kwargs)
        if self.built:
            self.optimizer.build(self.student.trainable_variables)


def _unscale(value):
    """Undoes the per-replica 1/num_replicas factor for reporting."""
    strategy = tf.distribute.get_strategy()
    return value * ops.cast(strategy.num_replicas_in_sync, value.dtype)


def _probabilities(kind, logits):
    if kind == "binary":
        # [1 - sigmoid(z), sigmoid(z)]: a softmax over one logit is always 1.
        return ops.concatenate(
            [ops.sigmoid(-logits), ops.sigmoid(logits)], axis=-1
        )
    return ops.softmax(logits, axis=-1)


def _default_student_loss(kind):
    if kind == "binary":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if kind == "categorical":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if kind == "regression":
        return keras.losses.MeanSquaredError()
    return losses_module.ListwiseSoftmaxCrossEntropy()


def _default_distill_loss(kind):
    if kind == "binary":
        return losses_module.BinaryKLDivergence()
    if kind == "regression":
        return keras.losses.MeanSquaredError(name="teacher_mse")
    return losses_module.CategoricalKLDivergence()


def _as_loss(loss, argument):
    """Resolves a loss argument to `None` or one `keras.losses.Loss` object.

    Strings and plain functions are wrapped, so `"kl_divergence"` and
    `keras.losses.KLDivergence()` compute the same value: both receive
    probabilities and both are reduced the same way.
    """
    if loss is None or isinstance(loss, keras.losses.Loss):
        return loss
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            raise ValueError(
                f"Unknown loss for `{argument}`: {loss!r}. Pass a "
                "`keras.losses` name, a `keras.losses.Loss` or a callable."
            ) from None
    if isinstance(loss, keras.losses.Loss):
        return loss
    if callable(loss):
        return _FunctionLoss(loss)
    raise TypeError(
        f"`{argument}` must be None, a string, a `keras.losses.Loss` or a "
        f"callable. Received: {argument}={loss!r}"
    )


class _FunctionLoss(keras.losses.Loss):
    """Gives a per-example loss function the reduction of a `Loss` object.

    Not serialized itself: the compile config stores what the user passed.
    """

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def _validate_alpha(value):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            "`alpha` is the weight of the hard-label loss and must be in "
            f"[0, 1]. Received: alpha={value}"
        )
    return value


def _validate_temperature(value):
    value = float(value)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(
            "`temperature` must be a finite number > 0 (1 keeps the logits "
            f"as they are; 2-5 is usual). Received: temperature={value}"
        )
    return value


def _static_output_shape(model):
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


def _check_same_shape(teacher_shape, student_shape):
    if teacher_shape is None or student_shape is None:
        return
    if len(teacher_shape) != len(student_shape) or any(
        t is not None and s is not None and t != s
        for t, s in zip(teacher_shape[1:], student_shape[1:])
    ):
        raise ValueError(
            "Teacher and student must output logits of the same shape. "
            f"Received: teacher output shape={teacher_shape}, student output "
            f"shape={student_shape}. Give the student the teacher's output "
            "layer size."
        )


def _resolve_kind(kind, output_shape):
    if kind != "auto":
        return kind
    if output_shape is None or output_shape[-1] is None:
        return None
    return "binary" if output_shape[-1] == 1 else "categorical"


def _check_outputs_logits(model, role):
    """Rejects a model whose last layer turns logits into probabilities."""
    layers = getattr(model, "layers", None)
    if not layers:
        return
    last = layers[-1]
    activation = None
    if isinstance(last, keras.layers.Softmax):
        activation = "softmax"
    elif hasattr(last, "activation"):
        activation = getattr(last.activation, "__name__", None)
    if activation in _PROBABILITY_ACTIVATIONS:
        raise ValueError(
            f"The {role} must output logits, but its last layer "
            f"'{last.name}' applies {activation}. Remove that activation "
            "(e.g. `Dense(1)` instead of `Dense(1, activation='sigmoid')`); "
            "the Distiller applies the temperature-scaled sigmoid/softmax "
            "itself."
        )
