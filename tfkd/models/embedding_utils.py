"""Inputs and embeddings shared by the ranking and two-tower builders."""

import keras

from tfkd.models.feature_embedding import FeatureEmbedding


def feature_inputs(features):
    """Returns a dict of named `keras.Input`, one per feature.

    Id features are int32, numeric features float32. Scalar features get
    shape `()`, list features shape `(length,)`.
    """
    return {
        f.name: keras.Input(
            shape=(f.length,) if f.is_list else (),
            dtype="float32" if f.is_numeric else "int32",
            name=f.name,
        )
        for f in features
    }


def numeric_block(inputs, features):
    """Standardises the numeric features: `(batch, len(features))`.

    ```
    out[:, k] = (inputs[f_k] - f_k.mean) / f_k.std
    ```

    One `Rescaling` (a MUL and an ADD in LiteRT) rather than
    `Normalization`, whose division by a constant would put an int8 DIV
    with a data numerator in a full-int8 file (see `masked_mean`).

    Args:
        inputs: dict of feature name to `(batch,)` float tensor.
        features: non-empty sequence of numeric `Feature`.

    Returns:
        Tensor `(batch, len(features))`.
    """
    columns = [
        keras.layers.Reshape((1,), name=f"{f.name}_column")(inputs[f.name])
        for f in features
    ]
    x = columns[0] if len(columns) == 1 else keras.layers.Concatenate(
        name="numeric_columns"
    )(columns)
    return keras.layers.Rescaling(
        scale=[1.0 / f.std for f in features],
        offset=[-f.mean / f.std for f in features],
        name="numeric_scaling",
    )(x)


def embed_features(inputs, features, embedding_dim):
    """Embeds every feature and concatenates: `(batch, n * embedding_dim)`.

    One `FeatureEmbedding` layer named `"embeddings"`: out-of-range ids
    read row 0, list features are mean-pooled over their non-zero ids.
    """
    return FeatureEmbedding(features, embedding_dim, name="embeddings")(
        inputs
    )


def vocabulary_sizes(model):
    """Vocabulary size of every id input of a tfkd model.

    Read from its `FeatureEmbedding` layers.

    Args:
        model: `keras.Model`.

    Returns:
        dict of input name to vocabulary size; inputs that no such layer
        covers are left out.
    """
    sizes = {}
    for layer in model.layers:
        if isinstance(layer, FeatureEmbedding):
            sizes.update(layer.vocabulary_sizes)
    return sizes
