"""tf_keras twins of tfkd's and keras-rs' layers, for TFMOT.

Each twin computes what its Keras 3 layer computes (the shared math lives
in `tfkd.models`), so `to_tf_keras` can rebuild a student in tf_keras
with the same weights; the twins of the embedding layers are TFMOT
`PrunableLayer`s.
"""

import dataclasses

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfkd.models import feature_embedding


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
    "TfKerasFeatureCross": TfKerasFeatureCross,
}
