"""Rebuilds a Keras 3 tfkd ranking model in tf_keras, weights included.

TFMOT 0.8 (quantization-aware training, pruning) accepts only tf_keras
models. `to_tf_keras` walks the Keras 3 Functional graph node by node and
calls a tf_keras twin of each layer on the tf_keras tensors, then copies the
weights, so the twin model computes the same function (checked to 1e-5).

Supported layers: `InputLayer`, `Embedding`, `Dense`, `Dropout`,
`Concatenate`, `Flatten`, `Reshape`, `keras_rs.layers.FeatureCross`,
`tfkd.models.FeatureEmbedding`, `tfkd.models.SafeIds`,
`tfkd.models.MaskedMeanPooling`. Anything else raises a `ValueError` that
names the layer and its class.
"""

import dataclasses

import keras
import keras_rs
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfkd.models import feature_embedding
from tfkd.models.feature_embedding import FeatureEmbedding
from tfkd.models.masked_mean_pooling import MaskedMeanPooling
from tfkd.models.safe_ids import SafeIds


class TfKerasFeatureEmbedding(
    tf_keras.layers.Layer, tfmot.sparsity.keras.PrunableLayer
):
    """tf_keras twin of `tfkd.models.FeatureEmbedding`.

    Calls the same `feature_embedding.embed` (Keras ops are TensorFlow ops
    under the TensorFlow backend), so the two build the same graph. Its
    tables are prunable (`prune_low_magnitude`).

    Args:
        features: sequence of `Feature` or their dicts.
        embedding_dim: int. Width of every table.

    Example:

    ```python
    twin = TfKerasFeatureEmbedding(spec.features, 4)
    x = twin({name: tf_keras.Input(...) for name in spec.names})
    ```
    """

    def __init__(self, features, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        self.features = feature_embedding.normalize_features(features)
        self.embedding_dim = int(embedding_dim)

    def build(self, input_shape):
        shapes = {
            name: tuple(tf.TensorShape(shape).as_list())
            for name, shape in input_shape.items()
        }
        feature_embedding.check_input_shapes(self.features, shapes)
        # Same order and names as the Keras 3 layer, so `set_weights`
        # copies table by table.
        self.tables = [
            self.add_weight(
                name=f"{f.name}_embeddings",
                shape=(f.vocabulary_size, self.embedding_dim),
                initializer="uniform",
            )
            for f in self.features
        ]
        super().build(input_shape)

    def call(self, inputs):
        return feature_embedding.embed(inputs, self.features, self.tables)

    def get_prunable_weights(self):
        return list(self.tables)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "features": [dataclasses.asdict(f) for f in self.features],
                "embedding_dim": self.embedding_dim,
            }
        )
        return config


class TfKerasSafeIds(tf_keras.layers.Layer):
    """tf_keras twin of `tfkd.models.SafeIds` (same math, same config).

    ```
    safe(id) = id if 0 <= id < vocabulary_size else 0
    ```

    Args:
        vocabulary_size: int. Rows in the embedding table it feeds.

    Example:

    ```python
    TfKerasSafeIds(5)(tf.constant([-1, 0, 3, 5]))  # [0, 0, 3, 0]
    ```
    """

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)

    def call(self, ids):
        ids = tf.cast(ids, tf.int32)
        valid = tf.logical_and(ids >= 0, ids < self.vocabulary_size)
        # Scalar 0 as in `SafeIds`: no ZEROS_LIKE op per feature in LiteRT.
        return tf.where(valid, ids, 0)

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary_size": self.vocabulary_size})
        return config


class TfKerasMaskedMeanPooling(tf_keras.layers.Layer):
    """tf_keras twin of `tfkd.models.MaskedMeanPooling`.

    ```
    out[b] = sum_l [ids[b, l] != 0] * emb[b, l] / max(1, #non-zero ids[b])
    ```

    Computed as `total * (1 / count)` (equal to float32 round-off): this
    twin exists for int8 conversion, and LiteRT's int8 DIV kernel saturates
    to +-127 when a small numerator (|q| <= a few steps) needs a right
    shift over 31 bits, which happens when the output scale is coarse next
    to the numerator's (the output takes the Concatenate's scale). Here
    the numerator of the DIV is the constant 1, and the mean is an int8
    MUL.

    Example:

    ```python
    pooled = TfKerasMaskedMeanPooling()([embeddings, ids])
    ```
    """

    def call(self, inputs):
        embeddings, ids = inputs
        mask = tf.cast(tf.not_equal(ids, 0), embeddings.dtype)
        total = tf.reduce_sum(embeddings * tf.expand_dims(mask, -1), axis=1)
        count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
        return total * (1.0 / count)


class TfKerasFeatureCross(tf_keras.layers.Layer):
    """tf_keras twin of `keras_rs.layers.FeatureCross` (DCN-v2 cross).

    Called on `[x0, x]`, the same math as keras-rs 0.4:

    ```
    h = W_down x        if projection_dim else x
    h = act(W h + b)    # act = pre_activation, b only with use_bias
    h = h + diag_scale * x                     if diag_scale
    out = x0 * h + x
    ```

    Args:
        projection_dim: int or None. Low-rank projection width. Defaults to
            `None`.
        diag_scale: float or None. Diagonal added to `W`. Defaults to
            `0.0`.
        use_bias: bool. Defaults to `True`.
        pre_activation: str or None. Activation of `W h + b`. Defaults to
            `None`.

    Example:

    ```python
    x1 = TfKerasFeatureCross()([x0, x0])
    ```
    """

    def __init__(
        self,
        projection_dim=None,
        diag_scale=0.0,
        use_bias=True,
        pre_activation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.projection_dim = projection_dim
        self.diag_scale = diag_scale
        self.use_bias = use_bias
        self.pre_activation = pre_activation

    def build(self, input_shape):
        last_dim = int(input_shape[0][-1])
        # Built in keras-rs' order (down projection first) so that
        # `get_weights()` lists the kernels in the same order as the
        # original layer's.
        if self.projection_dim is not None:
            self.down_proj_dense = tf_keras.layers.Dense(
                self.projection_dim, use_bias=False, name="down_proj_dense"
            )
        self.dense = tf_keras.layers.Dense(
            last_dim,
            activation=self.pre_activation,
            use_bias=self.use_bias,
            name="dense",
        )
        super().build(input_shape)

    def call(self, inputs):
        x0, x = inputs
        output = x
        if self.projection_dim is not None:
            output = self.down_proj_dense(output)
        output = self.dense(output)
        if self.diag_scale:
            output = output + self.diag_scale * x
        return x0 * output + x

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "projection_dim": self.projection_dim,
                "diag_scale": self.diag_scale,
                "use_bias": self.use_bias,
                "pre_activation": self.pre_activation,
            }
        )
        return config


CUSTOM_OBJECTS = {
    "TfKerasFeatureEmbedding": TfKerasFeatureEmbedding,
    "TfKerasSafeIds": TfKerasSafeIds,
    "TfKerasMaskedMeanPooling": TfKerasMaskedMeanPooling,
    "TfKerasFeatureCross": TfKerasFeatureCross,
}


def _activation_name(activation):
    if activation is None:
        return None
    name = getattr(activation, "__name__", None)
    if name is None or tf_keras.activations.get(name) is None:
        raise ValueError(
            "Expected a built-in activation (relu, linear, ...). "
            f"Received: activation={activation!r}"
        )
    return name


def _dense(layer):
    return tf_keras.layers.Dense(
        layer.units,
        activation=_activation_name(layer.activation),
        use_bias=layer.use_bias,
        name=layer.name,
    )


def _embedding(layer):
    return tf_keras.layers.Embedding(
        layer.input_dim,
        layer.output_dim,
        mask_zero=layer.mask_zero,
        name=layer.name,
    )


def _feature_cross(layer):
    return TfKerasFeatureCross(
        projection_dim=layer.projection_dim,
        diag_scale=layer.diag_scale,
        use_bias=layer.use_bias,
        pre_activation=_activation_name(layer.pre_activation),
        name=layer.name,
    )


# Exact classes, not isinstance: a subclass may change `call`, and a twin
# of the base class would then compute something else.
_TWINS = {
    keras.layers.Dense: _dense,
    keras.layers.Embedding: _embedding,
    keras.layers.Dropout: lambda layer: tf_keras.layers.Dropout(
        layer.rate, seed=layer.seed, name=layer.name
    ),
    keras.layers.Concatenate: lambda layer: tf_keras.layers.Concatenate(
        axis=layer.axis, name=layer.name
    ),
    keras.layers.Flatten: lambda layer: tf_keras.layers.Flatten(
        name=layer.name
    ),
    keras.layers.Reshape: lambda layer: tf_keras.layers.Reshape(
        layer.target_shape, name=layer.name
    ),
    keras_rs.layers.FeatureCross: _feature_cross,
    FeatureEmbedding: lambda layer: TfKerasFeatureEmbedding(
        layer.features, layer.embedding_dim, name=layer.name
    ),
    SafeIds: lambda layer: TfKerasSafeIds(
        layer.vocabulary_size, name=layer.name
    ),
    MaskedMeanPooling: lambda layer: TfKerasMaskedMeanPooling(
        name=layer.name
    ),
}
SUPPORTED_LAYERS = tuple(
    f"{cls.__module__.split('.')[0]}.{cls.__name__}" for cls in _TWINS
)


def twin_layer(layer):
    """Returns an unbuilt tf_keras twin of one Keras 3 layer.

    Args:
        layer: `keras.layers.Layer`. One of `SUPPORTED_LAYERS`.

    Returns:
        A `tf_keras.layers.Layer` with the same name and configuration.

    Raises:
        ValueError: If the layer's class has no tf_keras twin.
    """
    factory = _TWINS.get(type(layer))
    if factory is None:
        raise ValueError(
            f"Cannot rebuild layer '{layer.name}' of class "
            f"{type(layer).__module__}.{type(layer).__name__} in tf_keras: "
            f"expected one of {', '.join(SUPPORTED_LAYERS)}. Received: "
            f"layer={layer.name!r}"
        )
    return factory(layer)


def _call_twin(twin, *args, **kwargs):
    if isinstance(twin, TfKerasFeatureCross):
        # keras-rs calls FeatureCross(x0, x); the twin takes one list so
        # that tf_keras' clone_model (used by TFMOT) can serialize the node.
        x0 = args[0]
        x = args[1] if len(args) > 1 else kwargs.pop("x", x0)
        return twin([x0, x])
    kwargs.pop("training", None)
    return twin(*args, **kwargs)


def to_tf_keras(model):
    """Rebuilds a Keras 3 Functional model in tf_keras with equal weights.

    The graph is replayed node by node, so inputs keep their names, shapes
    and dtypes (int32 ids) and every layer keeps its name. Weights are
    copied layer by layer; outputs agree to float32 round-off.

    Args:
        model: `keras.Model`. A Functional model made of
            `SUPPORTED_LAYERS`, such as `tfkd.models.ranking_model`.

    Returns:
        A `tf_keras.Model`.

    Raises:
        TypeError: If `model` is not a Functional `keras.Model`.
        ValueError: If a layer has no tf_keras twin (the message names the
            layer and its class).

    Example:

    ```python
    student = tfkd.models.student(data.spec)
    twin = to_tf_keras(student)
    twin.predict(features)  # == student.predict(features)
    ```
    """
    if not _is_functional(model):
        raise TypeError(
            "Expected a Functional keras.Model (built with keras.Input). "
            f"Received: model of type {type(model).__name__}"
        )
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    twins = {id(layer): twin_layer(layer) for layer in layers}
    inputs = {
        t.name: tf_keras.Input(
            shape=tuple(t.shape[1:]), dtype=t.dtype, name=t.name
        )
        for t in model.inputs
    }
    # `_run_through_graph` replays the Keras 3 graph with our callables;
    # inputs are matched to `model.inputs` by sorted name on both sides.
    ordered = [inputs[t.name] for t in model.inputs]
    outputs = model._run_through_graph(
        ordered,
        operation_fn=lambda layer: twins[id(layer)],
        call_fn=_call_twin,
    )
    twin_model = tf_keras.Model(inputs, outputs, name=model.name)
    for layer in layers:
        _copy_weights(layer, twins[id(layer)])
    return twin_model


def _is_functional(model):
    if not isinstance(model, keras.Model):
        return False
    try:
        # An unbuilt Sequential raises here; a subclassed model has None.
        return bool(model.inputs) and hasattr(model, "_run_through_graph")
    except (AttributeError, ValueError):
        return False


def _copy_weights(layer, twin):
    if isinstance(twin, TfKerasFeatureCross):
        if layer.projection_dim is not None:
            twin.down_proj_dense.set_weights(
                layer.down_proj_dense.get_weights()
            )
        twin.dense.set_weights(layer.dense.get_weights())
        return
    weights = layer.get_weights()
    if len(weights) != len(twin.get_weights()):
        raise ValueError(
            f"Expected layer '{layer.name}' and its tf_keras twin to hold "
            f"the same weights. Received: {len(weights)} vs "
            f"{len(twin.get_weights())} arrays"
        )
    twin.set_weights(weights)
