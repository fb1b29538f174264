"""`RetrievalDistiller`: a two-tower teacher distilled into a two-tower
student, on in-batch score matrices or on the teacher's top-K rankings."""

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from tfkd._internal import model_utils
from tfkd._internal.api_export import tfkd_export
from tfkd._internal.arguments import validate_positive_int
from tfkd.distillers import retrieval_losses
from tfkd.distillers import retrieval_targets
from tfkd.distillers import validation as validation
from tfkd.models.two_tower import TwoTowerModel

METHODS = ("in_batch", "ranking")


@tfkd_export("tfkd.RetrievalDistiller")
class RetrievalDistiller(keras.Model):
    """Distils a frozen two-tower teacher into a two-tower student.

    Trained on the batches `TwoTowerModel.fit` takes (each row a positive
    (user, item) pair with both towers' features):

    ```
    loss = alpha * student.in_batch_loss(batch)       # logQ included
           + (1 - alpha) * distillation_loss
    ```

    `method="in_batch"` compares the two models' `(B, B)` user x item
    logit matrices over the batch. The softened scores are each model's
    cosine similarities divided by its own tower temperature
    (`model.temperature`), then by the distillation temperature `T`:

    ```
    t = U_t V_t^T / teacher.temperature     s = U_s V_s^T / student.temperature
    distillation_loss = T**2 * mean_rows KL(softmax(t / T) || softmax(s / T))
    ```

    Neither matrix gets the logQ correction: both rank the same batch of
    items, so the teacher's row distribution is the target as it is.

    `method="ranking"` (RD / DE-RRD): before training, the teacher ranks
    the whole catalogue (`candidates`) for every user of `users`, leaving
    out the pairs in `seen`, and keeps its top `top_k`. Each row of a
    batch looks up its user's list by `user_id`; the student must rank
    those items in the teacher's order above `num_negatives` items drawn
    uniformly from the catalogue per batch
    (`tfkd.distillers.retrieval_losses.relaxed_ranking_loss`, on the student's
    cosines divided by `student.temperature * T`). A user without a list
    contributes nothing to this term, and `fit` never calls the teacher.

    The teacher is frozen (`teacher.trainable = False`), called with
    `training=False`, and no gradient reaches it. The teacher's and
    student's towers may have different output widths: scores are
    compared, never embeddings. `distiller.student` is an ordinary
    `TwoTowerModel` (export it with `tfkd.export.to_tflite_retrieval`).

    Saving: `save` / `keras.models.load_model` restore both models, the
    compile settings and the teacher's top-K table with the catalogue's
    item features. Those tables are NumPy arrays traced into the step as
    constants: fine at MovieLens size (943 users, 1,682 items); a large
    catalogue would need them as lookups instead (not done).

    Args:
        teacher: `tfkd.models.TwoTowerModel`. The trained teacher.
        student: `tfkd.models.TwoTowerModel`. A different model object.
        seed: int or None. Seeds the sampled negatives of `"ranking"`.
            Defaults to `None` (Keras' global seed).
        name: str. Defaults to `"retrieval_distiller"`.

    Raises:
        TypeError: if `teacher` or `student` is not a `TwoTowerModel`.
        ValueError: if they are the same object.

    Example:

    ```python
    distiller = tfkd.RetrievalDistiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", alpha=0.5, temperature=1.0)
    distiller.fit(data.train, epochs=5)
    tfkd.export.to_tflite_retrieval(distiller.student, data.items, path)
    ```

    References:
        - [Tang & Wang, 2018. Ranking Distillation](
          https://arxiv.org/abs/1809.07428)
        - [Kang et al., 2020. DE-RRD](https://arxiv.org/abs/2012.04357)
    """

    def __init__(
        self,
        teacher: TwoTowerModel,
        student: TwoTowerModel,
        seed: int | None = None,
        name: str = "retrieval_distiller",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        _check_models(teacher, student)
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)
        self._alpha = validation.scalar_variable(0.5, "alpha")
        self._temperature = validation.scalar_variable(1.0, "temperature")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self.targets = None
        self._settings: dict[str, Any] | None = None
        self._restoring = False
        # Both models arrive built (TwoTowerModel builds itself), so the
        # distiller is too; `load_model` then needs no sample batch.
        self.built = True

    def compile(
        self,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        alpha: float = 0.5, temperature: float = 1.0,
        method: str = "in_batch",
        top_k: int = 10,
        num_negatives: int = 100,
        candidates: Any = None, users: Any = None, seen: Any = None,
        **kwargs: Any,
    ) -> None:
        """Configures the distillation.

        Args:
            optimizer: str or `keras.optimizers.Optimizer`. Updates the
                student. Defaults to `"adam"`.
            alpha: float in [0, 1]. Weight of the student's own in-batch
                loss; the distillation term gets `1 - alpha`. Defaults to
                `0.5`.
            temperature: float >= 0.05. The distillation temperature `T`.
                Defaults to `1.0`.
            method: `"in_batch"` or `"ranking"`. Defaults to `"in_batch"`.
            top_k: int >= 1. Teacher items per user (`"ranking"`).
                Defaults to `10`.
            num_negatives: int >= 1. Sampled items per batch
                (`"ranking"`). Defaults to `100`.
            candidates: pandas DataFrame or dict of arrays: the catalogue
                (`data.items`), with `item_id` and both item towers'
                inputs. Required by `"ranking"` unless the targets were
                restored by `load_model`. Defaults to `None`.
            users: pandas DataFrame or dict of arrays (`data.users`), with
                `user_id` and the teacher's user-tower inputs. Required
                with `candidates`. Defaults to `None`.
            seen: DataFrame or dict with `user_id`, `item_id` pairs left
                out of the teacher's lists (the training interactions,
                `data.frames["train"]`; never validation or test rows).
                Defaults to `None`.
            **kwargs: passed to `keras.Model.compile`; `loss` and
                `metrics` are not accepted.

        Raises:
            ValueError: on a value out of range, an unknown `method`,
                `"ranking"` without `candidates`/`users`, or a `loss`.
        """
        for key in ("loss", "metrics"):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"`RetrievalDistiller.compile` does not take `{key}`: "
                    "the losses are the student's in-batch loss and the "
                    f"distillation term. Received: {key}={kwargs[key]!r}"
                )
        alpha = validation.validate_alpha(alpha)
        temperature = validation.validate_temperature(temperature)
        method = _validate_method(method)
        top_k = validate_positive_int("top_k", top_k)
        num_negatives = validate_positive_int("num_negatives", num_negatives)
        if method == "ranking":
            self.targets = retrieval_targets.resolve_targets(
                self.targets, self.teacher, self.student, top_k,
                candidates, users, seen, required=not self._restoring,
            )
        self._alpha.assign(alpha)
        self._temperature.assign(temperature)
        self._settings = {
            "alpha": alpha, "temperature": temperature, "method": method,
            "top_k": top_k, "num_negatives": num_negatives,
        }
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def alpha(self):
        """Weight of the student's own loss, in [0, 1] (None until
        compiled); likewise `temperature` and `method`."""
        return (self._settings or {}).get("alpha")

    @property
    def temperature(self):
        return (self._settings or {}).get("temperature")

    @property
    def method(self):
        return (self._settings or {}).get("method")

    @property
    def metrics(self):
        return [self.loss_tracker, self.student_loss_tracker,
                self.distillation_loss_tracker]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def train_step(self, data):
        features, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.compute_losses(features, training=True)
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply(gradients, variables)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        features, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self.compute_losses(features, training=False)
        return {m.name: m.result() for m in self.metrics}

    def compute_losses(self, features: dict, training: bool = False) -> Any:
        """One batch's loss, for training and evaluation (and trackers).

        Args:
            features: dict with both models' tower inputs, `item_id`, and
                `user_id` for `"ranking"`.
            training: bool. Passed to the student. Defaults to `False`.

        Returns:
            The scalar float32 loss.

        Raises:
            RuntimeError: before `compile`.
            ValueError: if `features` lacks an input of either model.
        """
        if self._settings is None:
            raise RuntimeError(
                "Call `RetrievalDistiller.compile()` before training or "
                "evaluating."
            )
        self._check_features(features)
        embeddings = self.student.embed(features, training=training)
        student_loss = ops.cast(
            self.student.in_batch_loss(
                features, training=training, embeddings=embeddings
            ),
            "float32",
        )
        if self.method == "in_batch":
            distillation_loss = self._in_batch_term(features, embeddings)
        else:
            distillation_loss = self._ranking_term(
                features, embeddings[0], training
            )
        alpha = self._alpha
        loss = alpha * student_loss + (1.0 - alpha) * distillation_loss
        self.loss_tracker.update_state(loss)
        self.student_loss_tracker.update_state(student_loss)
        self.distillation_loss_tracker.update_state(distillation_loss)
        return loss

    def _check_features(self, features):
        # The ranking term reads the teacher's lists, not the teacher.
        roles = {"student": self.student, "teacher": self.teacher}
        if self.method == "ranking":
            roles.pop("teacher")
        for role, model in roles.items():
            for tower in (model.user_model, model.item_model):
                model_utils.select_inputs(tower, features, role)
        for key in ("item_id", "user_id")[:1 + (self.method == "ranking")]:
            if key not in features:
                raise ValueError(
                    f"RetrievalDistiller(method={self.method!r}) reads the "
                    f"'{key}' column of each batch. Received features: "
                    f"{sorted(features)}"
                )

    def _in_batch_term(self, features, student_embeddings):
        teacher_users, teacher_items = self.teacher.embed(
            features, training=False
        )
        teacher_logits = ops.stop_gradient(
            ops.matmul(teacher_users, ops.transpose(teacher_items))
            / self.teacher.temperature
        )
        users, items = student_embeddings
        student_logits = (
            ops.matmul(users, ops.transpose(items)) / self.student.temperature
        )
        return retrieval_losses.in_batch_distillation_loss(
            teacher_logits, student_logits, self._temperature
        )

    def _ranking_term(self, features, student_users, training):
        negative_rows = keras.random.randint(
            (self._settings["num_negatives"],), 0,
            self.targets.num_candidates, seed=self._seed_generator,
            dtype="int32",
        )
        ranked_rows, row_weights = self.targets.lookup(features["user_id"])
        ranked, negatives = self.targets.cosines(
            self.student.item_model, student_users, ranked_rows,
            negative_rows, training=training,
        )
        scale = self.student.temperature * self._temperature
        negatives = retrieval_losses.masked_negative_logits(
            negatives / scale, negative_rows, ranked_rows
        )
        return retrieval_losses.relaxed_ranking_loss(
            ranked / scale, negatives, row_weights
        )

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            # The frozen teacher needs no optimizer: restoring one would
            # build it over no variables and warn that its state is lost.
            "teacher": {
                k: v for k, v in serialize(self.teacher).items()
                if k != "compile_config"
            },
            "student": serialize(self.student),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for role in ("teacher", "student"):
            config[role] = keras.saving.deserialize_keras_object(config[role])
        return cls(**config)

    def get_compile_config(self):
        if self._settings is None:
            return {}
        return {
            "optimizer": keras.saving.serialize_keras_object(self.optimizer),
            **self._settings,
        }

    def compile_from_config(self, config):
        config = dict(config)
        optimizer = keras.saving.deserialize_keras_object(
            config.pop("optimizer")
        )
        # The ranking targets, if any, come with the weights right after.
        self._restoring = True
        try:
            self.compile(optimizer=optimizer, **config)
        finally:
            self._restoring = False
        self.optimizer.build(self.student.trainable_variables)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.targets is not None:
            self.targets.save(store)

    def load_own_variables(self, store):
        own = retrieval_targets.RankingTargets.split_store(store)
        super().load_own_variables(own)
        targets = retrieval_targets.RankingTargets.load(store)
        if targets is not None:
            self.targets = targets


def _check_models(teacher, student):
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, TwoTowerModel):
            raise TypeError(
                f"`{role}` must be a tfkd.models.TwoTowerModel (e.g. from "
                "tfkd.models.two_tower). "
                f"Received: {role} of type {type(model).__name__}"
            )
    if teacher is student:
        raise ValueError(
            "`teacher` and `student` are the same model object: the teacher "
            "is frozen, so nothing would train. Build a separate student "
            f"(tfkd.models.two_tower). Received: teacher=student="
            f"'{student.name}'"
        )


def _validate_method(method):
    if method not in METHODS:
        raise ValueError(
            f"`method` must be one of {METHODS}. Received: method={method!r}"
        )
    return method
