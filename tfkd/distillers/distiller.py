"""The Distiller: a `keras.Model` that trains a student on a teacher's
soft targets."""

import contextlib
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from tfkd import callbacks as callbacks_module
from tfkd._internal import compat as _compat
from tfkd._internal import model_utils
from tfkd._internal.api_export import tfkd_export
from tfkd.distillers import config as distiller_config
from tfkd.distillers import feature_distillation as hints
from tfkd.distillers import labels as labels_module
from tfkd.distillers import loss_terms as distiller_losses
from tfkd.distillers import sample_weights as distiller_weights
from tfkd.distillers import validation as validation

KINDS = validation.KINDS
MIN_TEMPERATURE = validation.MIN_TEMPERATURE


@tfkd_export("tfkd.Distiller")
class Distiller(
    _compat.FirstLocalBatchBuild,
    distiller_config.DistillerConfig,
    keras.Model,
):
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

    Each model is fed the inputs it declares, by name, from the batch's
    feature dict, so the student may read fewer or other features than the
    teacher. Both losses are computed in float32 (mixed precision works).
    The labels of the first batch of every `fit` and `evaluate` call
    (validation data too) are checked against the kind.

    The teacher is frozen: the Distiller sets `teacher.trainable = False` on
    the model it is given (so a shared teacher stays frozen; to fine-tune it
    later, set `teacher.trainable = True` and compile it), calls it with
    `training=False` and no gradient reaches it. `fit` refuses a teacher
    made trainable again and a student frozen since. `call` and `predict`
    return the student's logits, on which compiled metrics are computed.

    Code written for the keras.io distillation recipe runs unchanged: a
    distillation loss that is not a `tfkd.losses.LogitDistillationLoss`
    (e.g. `keras.losses.KLDivergence()` or `"kl_divergence"`) gets teacher
    and student probabilities at temperature `T`, scaled by `T**2`; a binary
    output is expanded to `[1 - p, p]` so such a loss still transfers.

    `sample_weight` (a `fit`/`evaluate` argument, or the third element of
    each batch) is one array that weights both loss terms, or a dict
    `{"student": w_hard, "distillation": w_soft}`, either key optional
    (weights of 1): `w_hard` weights the hard-label loss and the
    `weighted_metrics`, and rows where it is 0 count in no metric; `w_soft`
    weights the soft-target loss. Each term is then
    `sum_i w[i] * loss[i] / N`, `N` being the number of rows in the batch,
    rows of weight 0 included (Keras' `"sum_over_batch_size"`; a loss
    object with another reduction keeps its own). A row of hard weight 0,
    such as an unlabelled `tfkd.datasets.with_transfer_set` row, trains
    only the soft term, counts in no metric, and its placeholder label is
    not checked.

    Saving: a custom loss function or class must be registered with
    `@keras.saving.register_keras_serializable()` (or passed to `load_model`
    as `custom_objects`); a lambda or a callable without `get_config` trains
    but cannot be saved (`save` says so and writes nothing).

    Args:
        teacher: `keras.Model`. The trained teacher; it must output logits.
        student: `keras.Model`. The student; it must output logits of the
            same shape as the teacher's, and be a different object.
        kind: str. One of `"auto"`, `"binary"`, `"categorical"`,
            `"regression"`, `"listwise"`. Defaults to `"auto"`.
        name: str. Name of the model. Defaults to `"distiller"`.
        feature_distillation: `tfkd.FeatureDistillation` or None. Adds
            `weight * feature_loss` (logged) between two hidden layers
            through a projection the Distiller trains. Defaults to `None`.

    Raises:
        TypeError: if `teacher` or `student` is not a `keras.Model`.
        ValueError: on an unknown `kind`, one model in both roles, outputs
            of different shapes, a softmax kind over one column, or a model
            that ends in a softmax or sigmoid.

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

    def __init__(self, teacher: keras.Model, student: keras.Model,
                 kind: str = "auto", name: str = "distiller",
                 feature_distillation: hints.FeatureDistillation | None = None,
                 **kw: Any) -> None:
        super().__init__(name=name, **kw)
        validation.check_models(teacher, student)
        self.kind = validation.validate_kind(kind)
        shape = validation.static_output_shape(student)
        teacher_shape = validation.static_output_shape(teacher)
        validation.check_same_shape(teacher_shape, shape)
        self._resolved_kind = validation.resolve_kind(kind, shape)
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        self._alpha = validation.scalar_variable(0.1, "alpha")
        self._temperature = validation.scalar_variable(3.0, "temperature")
        self._alpha_value, self._temperature_value = 0.1, 3.0
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self._compile_args: distiller_losses.CompileArgs | None = None
        hints.attach(self, feature_distillation)

    def compile(
        self, optimizer: str | keras.optimizers.Optimizer = "adam",
        metrics: list[Any] | None = None,
        student_loss_fn: str | keras.losses.Loss | Callable | None = None,
        distillation_loss_fn: str | keras.losses.Loss | Callable | None = None,
        alpha: float = 0.1, temperature: float = 3.0,
        **kwargs: Any,
    ) -> None:
        """Configures the Distiller for training.

        Args:
            optimizer: str or `keras.optimizers.Optimizer`. Updates the
                student. Defaults to `"adam"`.
            metrics: list of metrics computed on the student's logits against
                the hard labels. Defaults to `None`.
            student_loss_fn: loss on `(y, student_logits)`: a `keras.losses`
                name or object (`from_logits=True`), a function, a lambda or
                a callable object. Defaults by kind to binary or sparse
                categorical cross-entropy from logits, MSE, or
                `tfkd.losses.ListwiseSoftmaxCrossEntropy`.
            distillation_loss_fn: loss on the soft targets, in the same
                forms; see the class docstring for what it receives.
                Defaults by kind to `tfkd.losses.BinaryKLDivergence`,
                `tfkd.losses.CategoricalKLDivergence` or MSE.
            alpha: float in [0, 1]. Weight of `student_loss`; the soft targets
                get `1 - alpha`. Defaults to `0.1`.
            temperature: float >= `MIN_TEMPERATURE` (0.05). Defaults to
                `3.0`.
            **kwargs: passed to `keras.Model.compile` (e.g.
                `steps_per_execution`, `jit_compile`). `loss` is not accepted.

        Raises:
            ValueError: on `alpha` outside [0, 1], `temperature` below
                `MIN_TEMPERATURE`, a `loss` argument, or a cross-entropy
                whose `from_logits` does not match what it receives.
            TypeError: on a loss that is not a name, `Loss` or callable.
        """
        self.student_loss_fn, self.distillation_loss_fn = (
            distiller_losses.compile_losses(
                student_loss_fn, distillation_loss_fn, kwargs
            )
        )
        self.alpha = alpha
        self.temperature = temperature
        self._compile_args = distiller_losses.CompileArgs(
            metrics=metrics,
            student_loss_fn=student_loss_fn,
            distillation_loss_fn=distillation_loss_fn,
            kwargs=kwargs,
        )
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def build(self, input_shape):
        for role, model in (("teacher", self.teacher),
                            ("student", self.student)):
            if not model.built:
                model.build(model_utils.select_inputs(model, input_shape, role))
        self.built = True

    def call(self, inputs, training=None):
        inputs = model_utils.select_inputs(self.student, inputs, "student")
        return self.student(inputs, training=training)

    def fit(self, *args, **kwargs):
        """Trains the student; see `keras.Model.fit`.

        Checks the labels of the first training and validation batch
        against the kind, and adds `tfkd.callbacks.RaiseOnNaN` unless
        `callbacks` has one, so a NaN loss stops training with an error
        that names the batch.
        """
        arguments = validation.bind_arguments(super().fit, args, kwargs)
        self._require_compiled()
        validation.check_trainable_state(self.teacher, self.student)
        self._build_from(self._check_labels(arguments, "training"))
        val_x, val_y, val_w = labels_module.unpack_validation_data(
            arguments.get("validation_data")
        )
        self._check_labels(
            {"x": val_x, "y": val_y, "sample_weight": val_w}, "validation"
        )
        arguments["callbacks"] = callbacks_module.with_nan_guard(
            arguments.get("callbacks")
        )
        return super().fit(**arguments)

    def evaluate(self, *args, **kwargs):
        """Evaluates the student; see `keras.Model.evaluate`.

        Checks the labels of the first batch against the kind.
        """
        arguments = validation.bind_arguments(super().evaluate, args, kwargs)
        extra = arguments.pop("kwargs", {})
        # `fit` checked its validation data already.
        if not _compat.is_validation_pass(extra):
            self._require_compiled()
            self._check_labels(arguments, "evaluation")
        return super().evaluate(**arguments, **extra)

    def _check_labels(self, arguments, where):
        batch = labels_module.first_batch(
            arguments.get("x"), arguments.get("y"),
            arguments.get("sample_weight"),
        )
        if batch is None:
            return None
        shape = validation.output_shape(
            self.student, batch[0], validation.strategy_of(self)
        )
        kind = self._kind_for(shape)
        loss = self.student_loss_fn or distiller_losses.default_student_loss(
            kind
        )
        labels_module.check_labels(batch[1], kind, shape[-1], loss, where)
        return batch

    def _build_from(self, batch):
        # Callbacks that load weights before the first step (Keras'
        # `BackupAndRestore`) need a built model; without a strategy
        # TensorFlow would build it only at that step.
        if self.built or batch is None:
            return
        shapes = keras.tree.map_structure(
            lambda v: (None, *tuple(v.shape)[1:]), batch[0]
        )
        strategy = validation.strategy_of(self)
        with strategy.scope() if strategy else contextlib.nullcontext():
            self.build(shapes)

    def _require_compiled(self):
        if self._compile_args is None:
            raise RuntimeError(
                "Call `Distiller.compile()` before training or evaluating."
            )

    if keras.backend.backend() == "tensorflow":
        # TensorFlow keeps its own steps (MultiWorker workarounds in
        # `_step_logs`); JAX and torch run Keras' own, via `compute_loss`.

        def train_step(self, data):
            import tensorflow as tf

            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = ops.cast(self(x, training=True), "float32")
                loss = self._compute_losses(x, y, y_pred, sample_weight,
                                            training=True)
                scaled = self.optimizer.scale_loss(loss)
            variables = hints.trained_variables(self)
            gradients = tape.gradient(scaled, variables)
            self.optimizer.apply_gradients(
                zip(gradients, variables, strict=True)
            )
            return self._step_logs(x, y, y_pred, sample_weight)

        def test_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            y_pred = ops.cast(self(x, training=False), "float32")
            self._compute_losses(x, y, y_pred, sample_weight)
            return self._step_logs(x, y, y_pred, sample_weight)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The loss that Keras' default steps differentiate (JAX, torch).

        Keras' own step updates the `loss` tracker; the parts are here.
        """
        y_pred = ops.cast(y_pred, "float32")
        return self._compute_losses(
            x, y, y_pred, sample_weight, track_total=False, training=training
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics on the student's logits against the hard labels.

        With a dict `sample_weight` a row of hard weight 0 counts in no
        metric (see `tfkd.distillers.sample_weights`). Keras' JAX and torch
        steps call this too.
        """
        if not distiller_weights.is_per_term(sample_weight):
            return super().compute_metrics(x, y, y_pred, sample_weight)
        distiller_weights.update_metrics(self, y, y_pred, sample_weight)
        return self.get_metrics_result()

    def _step_logs(self, x, y, y_pred, sample_weight):
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return _compat.reducible_logs(self.distribute_strategy, logs)

    def _compute_losses(self, x, y, y_pred, sample_weight, track_total=True,
                        training=False):
        """The one loss computation shared by training and evaluation.

        `y_pred` is the student's logits in float32; the teacher's are cast
        too, so both losses are float32 under any dtype policy. Each loss
        term is a `keras.losses.Loss` call, which averages over the
        replica's batch and divides by the number of replicas, so that
        summing gradients across replicas gives the global-batch mean. The
        trackers record the unscaled values.
        """
        if y is None:
            raise ValueError(
                "The Distiller needs hard labels: pass `(x, y)` or "
                "`(x, y, sample_weight)` batches. To train on the teacher's "
                "soft targets alone, pass any labels and set `alpha=0`."
            )
        teacher_logits, t_hidden = hints.teacher_outputs(self, x)
        validation.check_same_shape(
            tuple(teacher_logits.shape), tuple(y_pred.shape)
        )
        kind = self._kind_for(tuple(y_pred.shape))
        student_fn, distill_fn = self._loss_fns(kind)
        hard, soft = distiller_weights.split_sample_weight(sample_weight)
        student_loss = ops.cast(
            student_fn(y, y_pred, sample_weight=hard), "float32"
        )
        distillation_loss = distiller_losses.soft_target_loss(
            kind,
            distill_fn,
            teacher_logits,
            y_pred,
            ops.cast(self._temperature, "float32"),
            soft,
        )
        alpha = ops.cast(self._alpha, "float32")
        loss = alpha * student_loss + (1.0 - alpha) * distillation_loss
        loss = hints.add_feature_loss(self, loss, x, t_hidden, soft, training)
        unscale = distiller_losses.unscale
        self.student_loss_tracker.update_state(unscale(student_loss))
        self.distillation_loss_tracker.update_state(unscale(distillation_loss))
        if track_total:
            self._loss_tracker.update_state(unscale(loss))
        return loss

    def _kind_for(self, shape):
        if self._resolved_kind is None:
            self._resolved_kind = validation.resolve_kind(self.kind, shape)
        return self._resolved_kind

    def _loss_fns(self, kind):
        self._require_compiled()
        student_fn = (
            self.student_loss_fn or distiller_losses.default_student_loss(kind)
        )
        distill_fn = (
            self.distillation_loss_fn
            or distiller_losses.default_distillation_loss(kind)
        )
        # Keep the defaults so every traced step reuses the same objects.
        self.student_loss_fn, self.distillation_loss_fn = student_fn, distill_fn
        return student_fn, distill_fn
