"""Rebuilds a Keras 3 tfkd ranking model in tf_keras, weights included.

TFMOT 0.8 (quantization-aware training, pruning) accepts only tf_keras
models. `to_tf_keras` walks the Keras 3 Functional graph node by node and
calls a tf_keras twin of each layer on the tf_keras tensors, then copies the
weights, so the twin model computes the same function (checked to 1e-5).

Supported layers: `InputLayer`, `Embedding`, `Dense`, `Dropout`,
`Concatenate`, `Flatten`, `Reshape`, `keras_rs.layers.FeatureCross`,
`tfkd.models.FeatureEmbedding`. Anything else raises a `ValueError` that
names the layer and its class.
"""


import keras
import keras_rs
import tf_keras

from tfkd._internal import compat as _compat
from tfkd.export.tf_keras_layers import TfKerasFeatureCross
from tfkd.export.tf_keras_layers import TfKerasFeatureEmbedding
from tfkd.models.feature_embedding import FeatureEmbedding


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


def to_tf_keras(model: keras.Model) -> tf_keras.Model:
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
    # Inputs are matched to `model.inputs` by name on both sides.
    ordered = [inputs[t.name] for t in model.inputs]
    outputs = _compat.replay_graph(
        model,
        ordered,
        operation_fn=lambda layer: twins[id(layer)],
        call_fn=_call_twin,
    )
    twin_model = tf_keras.Model(inputs, outputs, name=model.name)
    for layer in layers:
        _copy_weights(layer, twins[id(layer)])
    return twin_model


def _is_functional(model):
    if not _compat.is_functional(model):
        return False
    try:
        # An unbuilt Sequential raises here.
        return bool(model.inputs)
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
