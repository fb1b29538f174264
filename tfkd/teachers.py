"""Teacher sources beyond one model: an ensemble, and cached logits.

Each is a `keras.Model` that returns logits, so it goes wherever a teacher
goes (`tfkd.Distiller(teacher=...)`) and saves with the Distiller.
"""

from typing import Any

import keras
import numpy as np
from keras import ops

from tfkd._internal import model_utils
from tfkd._internal.api_export import tfkd_export

DEFAULT_LOGITS_KEY = "teacher_logits"

__all__ = ["CachedLogits", "DEFAULT_LOGITS_KEY", "Ensemble", "cache_logits"]


@tfkd_export("tfkd.teachers.Ensemble")
class Ensemble(keras.Model):
    """Averages the logits of several teachers.

    ```
    logits(x) = sum_i w_i * teacher_i(x) / sum_i w_i
    ```

    Each member is fed the inputs it declares, by name, so members may read
    different features of one batch. Members must output logits of one
    shape; averaging logits (not probabilities) keeps the result a logit
    that the Distiller's temperature applies to.

    Args:
        members: list of `keras.Model`. Trained teachers that output
            logits; at least one.
        weights: list of float > 0, or None. One weight per member.
            Defaults to `None` (equal weights).
        name: str. Defaults to `"ensemble"`.

    Raises:
        TypeError: If a member is not a `keras.Model`.
        ValueError: On no members, a member that outputs probabilities,
            members of different output shapes, or weights that are not
            one positive number per member.

    Example:

    ```python
    teacher = tfkd.teachers.Ensemble([dcn_a, dcn_b, dcn_c])
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    ```
    """

    def __init__(
        self,
        members: list[keras.Model],
        weights: list[float] | None = None,
        name: str = "ensemble",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        members = _validate_members(members)
        self.members = members
        self.member_weights = _validate_weights(weights, len(members))
        for member in members:
            member.trainable = False

    def call(self, inputs, training=False):
        total = sum(self.member_weights)
        logits = None
        for member, weight in zip(
            self.members, self.member_weights, strict=True
        ):
            features = model_utils.select_inputs(member, inputs, "member")
            out = ops.cast(member(features, training=False), "float32")
            out = out * (weight / total)
            logits = out if logits is None else logits + out
        return logits

    def build(self, input_shape):
        for member in self.members:
            if not member.built:
                member.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.members[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "members": [
                    keras.saving.serialize_keras_object(m) for m in self.members
                ],
                "weights": list(self.member_weights),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [
            keras.saving.deserialize_keras_object(m) for m in config["members"]
        ]
        return cls(**config)


@tfkd_export("tfkd.teachers.CachedLogits")
class CachedLogits(keras.Model):
    """A teacher that reads logits computed earlier from the batch.

    Offline distillation: score the training data with the teacher once
    (`tfkd.teachers.cache_logits`), keep the logits as one more feature,
    and train without calling the teacher. The student ignores the extra
    feature (each model is fed the inputs it declares), and the loss is
    the one a live teacher gives on the same rows.

    Args:
        key: str. The feature that holds the logits. Defaults to
            `"teacher_logits"`.
        name: str. Defaults to `"cached_logits"`.

    Raises:
        ValueError: At call time, if the batch has no `key` feature.

    Example:

    ```python
    features = tfkd.teachers.cache_logits(teacher, features)
    train = tf.data.Dataset.from_tensor_slices((features, labels))
    distiller = tfkd.Distiller(tfkd.teachers.CachedLogits(), student)
    ```
    """

    def __init__(
        self,
        key: str = DEFAULT_LOGITS_KEY,
        name: str = "cached_logits",
        **kw: Any,
    ) -> None:
        super().__init__(name=name, **kw)
        if not isinstance(key, str) or not key:
            raise TypeError(
                "`key` must be the name of the feature holding the logits. "
                f"Received: key={key!r}"
            )
        self.key = key

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or self.key not in inputs:
            found = sorted(inputs) if isinstance(inputs, dict) else inputs
            raise ValueError(
                f"CachedLogits reads the teacher's logits from the feature "
                f"'{self.key}', which the batch lacks. Add it with "
                "`tfkd.teachers.cache_logits(teacher, features)`. "
                f"Received features: {found}"
            )
        return ops.cast(inputs[self.key], "float32")

    def build(self, input_shape):
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape[self.key]

    def get_config(self):
        config = super().get_config()
        config["key"] = self.key
        return config


def cache_logits(
    teacher: keras.Model,
    features: dict[str, np.ndarray],
    key: str = DEFAULT_LOGITS_KEY,
    batch_size: int = 4096,
) -> dict[str, np.ndarray]:
    """Scores features with a teacher once and adds the logits to them.

    Args:
        teacher: `keras.Model`. The trained teacher (logits out).
        features: dict of str to array. One row per example, e.g. the
            columns of the training set before it is shuffled and batched.
        key: str. Name of the added feature. Defaults to
            `"teacher_logits"`.
        batch_size: int. Rows per teacher call. Defaults to `4096`.

    Returns:
        A new dict: `features` plus `key`, a float32 array of the teacher's
        logits in row order.

    Raises:
        ValueError: If `key` is already a feature, or the teacher outputs
            probabilities.

    Example:

    ```python
    columns = tfkd.teachers.cache_logits(teacher, columns)
    columns["teacher_logits"].shape   # (num_rows, 1)
    ```
    """
    if key in features:
        raise ValueError(
            f"The features already hold '{key}'; pass another `key`. "
            f"Received features: {sorted(features)}"
        )
    activation = model_utils.probability_activation(teacher)
    if activation:
        raise ValueError(
            f"The teacher '{teacher.name}' ends in {activation}: cache its "
            "logits, not probabilities (remove the activation)."
        )
    inputs = model_utils.select_inputs(teacher, features, "teacher")
    logits = teacher.predict(inputs, batch_size=batch_size, verbose=0)
    return {**features, key: np.asarray(logits, dtype=np.float32)}


def _validate_members(members):
    members = list(members) if isinstance(members, (list, tuple)) else None
    if not members:
        raise ValueError(
            "`members` must be a non-empty list of teacher models. "
            f"Received: members={members!r}"
        )
    shapes = set()
    for member in members:
        if not isinstance(member, keras.Model):
            raise TypeError(
                "Each ensemble member must be a `keras.Model`. "
                f"Received: {member!r} of type {type(member).__name__}"
            )
        activation = model_utils.probability_activation(member)
        if activation:
            raise ValueError(
                f"Ensemble member '{member.name}' ends in {activation}; "
                "members must output logits (remove the activation)."
            )
        outputs = getattr(member, "outputs", None)
        if outputs:
            shapes.add(tuple(outputs[0].shape[1:]))
    if len(shapes) > 1:
        raise ValueError(
            "Ensemble members must output logits of one shape. "
            f"Received shapes: {sorted(shapes)}"
        )
    return members


def _validate_weights(weights, count):
    if weights is None:
        return [1.0] * count
    weights = [float(w) for w in weights]
    if len(weights) != count or not all(w > 0 for w in weights):
        raise ValueError(
            f"`weights` must be {count} positive numbers, one per member. "
            f"Received: weights={weights}"
        )
    return weights
