"""Inputs and embeddings shared by the ranking and two-tower builders."""

import keras

from tfkd.models.feature_embedding import FeatureEmbedding
from tfkd.models.safe_ids import SafeIds


def feature_inputs(features):
    """Returns a dict of named int32 `keras.Input`, one per feature.

    Scalar features get shape `()`, list features shape `(length,)`.
    """
    return {
        f.name: keras.Input(
            shape=(f.length,) if f.is_list else (),
            dtype="int32",
            name=f.name,
        )
        for f in features
    }


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

    Read from its `FeatureEmbedding` layers, or from the per-feature
    `SafeIds` layers (`<name>_safe_ids`) of models built before it.

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
        elif isinstance(layer, SafeIds) and layer.name.endswith("_safe_ids"):
            sizes[layer.name[: -len("_safe_ids")]] = layer.vocabulary_size
    return sizes
