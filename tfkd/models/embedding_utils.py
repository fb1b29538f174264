"""Inputs and embeddings shared by the ranking and two-tower builders."""

import keras

from tfkd.models.masked_mean_pooling import MaskedMeanPooling
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

    Ids pass through `SafeIds` first, so an out-of-range id reads row 0;
    list features are mean-pooled over their non-zero ids.
    """
    embedded = []
    for f in features:
        ids = SafeIds(f.vocabulary_size, name=f"{f.name}_safe_ids")(
            inputs[f.name]
        )
        vectors = keras.layers.Embedding(
            f.vocabulary_size, embedding_dim, name=f"{f.name}_embedding"
        )(ids)
        if f.is_list:
            vectors = MaskedMeanPooling(name=f"{f.name}_pooling")(
                [vectors, ids]
            )
        embedded.append(vectors)
    if len(embedded) == 1:
        return embedded[0]
    return keras.layers.Concatenate(name="embeddings")(embedded)


def validate_positive_int(name, value):
    """Raises unless `value` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")


def validate_hidden(hidden):
    """Returns `hidden` as a tuple of ints >= 1."""
    if isinstance(hidden, int):
        raise TypeError(
            "`hidden` must be a sequence of layer widths, e.g. (64, 32). "
            f"Received: hidden={hidden!r}"
        )
    hidden = tuple(hidden)
    for width in hidden:
        validate_positive_int("hidden", width)
    return hidden
