"""Two-tower retrieval model trained with an in-batch softmax."""

import keras
import keras_rs
import numpy as np
import tensorflow as tf
from keras import ops

from tfkd._internal.api_export import tfkd_export
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.schema import ITEM_FEATURES
from tfkd.datasets.schema import USER_FEATURES
from tfkd.models import embedding_utils
from tfkd.models import validation_utils


def _input_names(model):
    return [tensor.name for tensor in model.inputs]


def _select(features, model):
    return {name: features[name] for name in _input_names(model)}


@tfkd_export("tfkd.models.TwoTowerModel")
class TwoTowerModel(keras.Model):
    """Scores users against items by the dot product of two towers.

    Trained with an in-batch softmax: in a batch of B (user, item) pairs
    every other item is a negative for a user.

    ```
    S = U V^T / temperature               # (B, B); U, V are L2-normalised
    loss = mean_b CE(softmax(S[b]), b)    # the positive is the diagonal
    ```

    Another row holding the same item as the positive is not counted as a
    negative (`keras_rs.layers.RemoveAccidentalHits`). In-batch negatives
    are drawn in proportion to item popularity, so without correction the
    towers learn to un-rank popular items; `set_item_counts` turns on the
    logQ correction (`S[:, j] -= log q(item_j)`, Yi et al. 2019) that
    removes this bias. `sample_weight` and the labels in the data are
    ignored: every row is a positive pair.

    Args:
        user_model: `keras.Model`. Dict of user features to `(batch, d)`.
        item_model: `keras.Model`. Dict of item features to `(batch, d)`.
        temperature: float. Softmax temperature, > 0. Defaults to `0.1`.
        num_items: int. Item vocabulary size (row 0 unknown); sizes the
            saved logQ table. Defaults to `None` (read from the item
            tower's `item_id` embedding table).

    Returns:
        Called on a dict with user and item features, the matched-pair
        scores `(batch, 1)`.

    Raises:
        ValueError: if `temperature <= 0`, or `num_items` is None and the
            item tower has no `item_id` embedding to read it from.

    Example:

    ```python
    model = two_tower(data.spec)
    model.compile(optimizer="adam")
    model.fit(data.train, epochs=2)
    scores = model.score(user_features, item_features)  # (users, items)
    ```
    """

    def __init__(
        self,
        user_model,
        item_model,
        temperature=0.1,
        num_items=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(
                "`temperature` must be > 0. "
                f"Received: temperature={temperature}"
            )
        self.user_model = user_model
        self.item_model = item_model
        self.temperature = float(temperature)
        if num_items is None:
            num_items = _item_vocabulary_size(item_model)
        self.num_items = int(num_items)
        # All zeros = uniform sampling, i.e. no correction (softmax is
        # invariant to a shift shared by every column).
        self.item_log_probability = self.add_weight(
            shape=(self.num_items,),
            initializer="zeros",
            trainable=False,
            name="item_log_probability",
        )
        self.remove_accidental_hits = keras_rs.layers.RemoveAccidentalHits()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        # Both towers arrive built, so the model is too; this lets
        # `load_model` restore weights without a sample batch.
        self.built = True

    def call(self, inputs, training=False):
        users, items = self.embed(inputs, training=training)
        return ops.sum(users * items, axis=-1, keepdims=True)

    def embed(self, features, training=False):
        """Both towers' outputs on a batch of (user, item) rows.

        Args:
            features: dict with the inputs of both towers, `B` rows.
            training: bool. Passed to the towers. Defaults to `False`.

        Returns:
            `(users, items)`: two `(B, d)` L2-normalised embeddings.
        """
        user_inputs = _select(features, self.user_model)
        item_inputs = _select(features, self.item_model)
        return (
            self.user_model(user_inputs, training=training),
            self.item_model(item_inputs, training=training),
        )

    def score(self, user_features, item_features):
        """All-pairs scores of users against items.

        Args:
            user_features: dict with the user tower's inputs, `n` rows.
            item_features: dict with the item tower's inputs, `m` rows.

        Returns:
            `(n, m)` tensor of cosine similarities (not divided by the
            temperature).
        """
        users = self.user_model(_select(user_features, self.user_model))
        items = self.item_model(_select(item_features, self.item_model))
        return ops.matmul(users, ops.transpose(items))

    def set_item_counts(self, counts):
        """Turns on the logQ correction from item interaction counts.

        Args:
            counts: array-like `(num_items,)`. Training interactions per
                item id (index 0 = unknown); e.g.
                `np.bincount(frame["item_id"], minlength=num_items)`.

        Raises:
            ValueError: if the length is not `num_items` or a count < 0.
        """
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.num_items,) or (counts < 0).any():
            raise ValueError(
                f"`counts` must be {self.num_items} non-negative numbers. "
                f"Received shape {counts.shape}"
            )
        # Add-one smoothing keeps log q finite for unseen items.
        probabilities = (counts + 1.0) / (counts + 1.0).sum()
        self.item_log_probability.assign(np.log(probabilities))

    def in_batch_loss(self, features, training=False, embeddings=None):
        """Mean in-batch softmax loss of a batch of positive pairs.

        Args:
            features: dict with both towers' inputs and `item_id`.
            training: bool. Passed to the towers. Defaults to `False`.
            embeddings: `(users, items)` from `embed(features)`, or None
                to compute them; a caller that also needs the embeddings
                (e.g. `tfkd.RetrievalDistiller`) runs the towers once.
                Defaults to `None`.

        Returns:
            Scalar loss, logQ correction included when it is set.
        """
        if embeddings is None:
            embeddings = self.embed(features, training=training)
        users, items = embeddings
        logits = ops.matmul(users, ops.transpose(items)) / self.temperature
        batch_size = ops.shape(logits)[0]
        labels = ops.eye(batch_size, dtype=logits.dtype)
        item_ids = ops.cast(features["item_id"], "int32")
        item_ids = ops.where(
            ops.logical_and(item_ids >= 0, item_ids < self.num_items),
            item_ids,
            ops.zeros_like(item_ids),
        )
        log_q = ops.take(self.item_log_probability, item_ids)
        logits = logits - ops.expand_dims(log_q, 0)
        logits = self.remove_accidental_hits(logits, labels, item_ids)
        losses = keras.losses.categorical_crossentropy(
            labels, logits, from_logits=True
        )
        return ops.mean(losses)

    def train_step(self, data):
        features, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = self.in_batch_loss(features, training=True)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        features, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self.loss_tracker.update_state(self.in_batch_loss(features))
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "user_model": keras.saving.serialize_keras_object(
                    self.user_model
                ),
                "item_model": keras.saving.serialize_keras_object(
                    self.item_model
                ),
                "temperature": self.temperature,
                "num_items": self.num_items,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("user_model", "item_model"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _item_vocabulary_size(item_model):
    sizes = embedding_utils.vocabulary_sizes(item_model)
    if "item_id" not in sizes:
        raise ValueError(
            "Pass `num_items`: it is read from an `item_id` embedding of "
            "the item tower (a tfkd.models.FeatureEmbedding), and "
            f"{item_model.name} has none. Received: embedded features "
            f"{sorted(sizes)}"
        )
    return sizes["item_id"]


def _tower(spec, names, embedding_dim, hidden, name):
    missing = [n for n in names if n not in spec.names]
    if missing:
        raise ValueError(
            f"The {name} needs features {list(names)}. "
            f"Missing: {missing}; received spec.names={list(spec.names)}"
        )
    features = [spec[n] for n in names]
    inputs = embedding_utils.feature_inputs(features)
    x = embedding_utils.embed_features(inputs, features, embedding_dim)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    x = keras.layers.Dense(embedding_dim, name="projection")(x)
    outputs = keras.layers.UnitNormalization(name="l2_normalize")(x)
    return keras.Model(inputs, outputs, name=name)


def two_tower(
    spec: FeatureSpec,
    embedding_dim: int = 32,
    hidden: tuple[int, ...] | list[int] = (64,),
    temperature: float = 0.1,
    item_counts: np.ndarray | list[float] | None = None,
    name: str | None = None,
) -> TwoTowerModel:
    """Builds a `TwoTowerModel` over the MovieLens user and item features.

    The user tower reads `user_id`, `age_bucket`, `gender`, `occupation`;
    the item tower `item_id`, `genres`, `release_year_bucket`. Each is
    embeddings -> ReLU MLP -> `Dense(embedding_dim)` -> L2 normalisation.

    Args:
        spec: `FeatureSpec` with those features.
        embedding_dim: int. Embedding and output width. Defaults to `32`.
        hidden: sequence of int. MLP widths per tower. Defaults to `(64,)`.
        temperature: float. In-batch softmax temperature. Defaults to `0.1`.
        item_counts: array-like or None. Training interactions per item id;
            given, turns on the logQ correction (see
            `TwoTowerModel.set_item_counts`). Defaults to `None`.
        name: str or None. Defaults to `None` (`"two_tower"`).

    Returns:
        A `TwoTowerModel` with `user_model` and `item_model` sub-models.

    Raises:
        TypeError: if `spec` is not a `FeatureSpec`.
        ValueError: if `spec` lacks a tower feature, or on bad widths.

    Example:

    ```python
    data = tfkd.datasets.synthetic_movielens(task="retrieval")
    model = two_tower(data.spec, embedding_dim=16)
    model.compile(optimizer="adam")
    model.fit(data.train, epochs=2)
    ```
    """
    if not isinstance(spec, FeatureSpec):
        raise TypeError(
            "`spec` must be a tfkd.datasets.FeatureSpec. "
            f"Received: {type(spec).__name__}"
        )
    validation_utils.validate_positive_int("embedding_dim", embedding_dim)
    hidden = validation_utils.validate_hidden(hidden)
    model = TwoTowerModel(
        user_model=_tower(
            spec, USER_FEATURES, embedding_dim, hidden, "user_tower"
        ),
        item_model=_tower(
            spec, ITEM_FEATURES, embedding_dim, hidden, "item_tower"
        ),
        temperature=temperature,
        num_items=spec["item_id"].vocabulary_size,
        name=name or "two_tower",
    )
    if item_counts is not None:
        model.set_item_counts(item_counts)
    return model
