"""The ranking (CTR / rating) model builder."""

from collections.abc import Sequence

import keras
import keras_rs

from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.models import embedding_utils
from tfkd.models import validation_utils

OUTPUTS = ("logit", "rating")
# Start a rating head near the MovieLens mean rating (about 3.5) so early
# epochs learn preferences instead of the global offset.
RATING_BIAS_INIT = 3.5


def _validate(spec, embedding_dim, cross_layers, dropout, output):
    if not isinstance(spec, FeatureSpec):
        raise TypeError(
            "`spec` must be a tfkd.datasets.FeatureSpec. "
            f"Received: {type(spec).__name__}"
        )
    validation_utils.validate_positive_int("embedding_dim", embedding_dim)
    if isinstance(cross_layers, bool) or not isinstance(cross_layers, int):
        raise TypeError(
            f"`cross_layers` must be an int. Received: {cross_layers!r}"
        )
    if cross_layers < 0:
        raise ValueError(
            "`cross_layers` must be >= 0. "
            f"Received: cross_layers={cross_layers}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout}")
    if output not in OUTPUTS:
        raise ValueError(
            f"`output` must be one of {OUTPUTS}. Received: output={output!r}"
        )


def ranking_model(
    spec: FeatureSpec,
    embedding_dim: int = 8,
    hidden: Sequence[int] = (64, 32),
    cross_layers: int = 0,
    dropout: float = 0.0,
    output: str = "logit",
    name: str | None = None,
) -> keras.Model:
    """Builds a DCN-v2 / MLP ranking model over the features of `spec`.

    ```
    x0 = concat(embedding(f) for id features f,  # list features: masked mean
                (x_f - mean_f) / std_f for numeric features f)
    x  = FeatureCross(x0, x) repeated cross_layers times
    y  = Dense(1)(MLP_relu(x))                # no activation
    ```

    One named input per feature: the int32 id features are all embedded
    by one `FeatureEmbedding` layer named `"embeddings"` (ids outside a
    vocabulary are scored as id 0); the float32 numeric features are
    standardised with the `mean` and `std` of their `Feature` and
    concatenated after the embeddings. The output is `(batch, 1)` with no
    activation: a sigmoid logit for `output="logit"` (what `tfkd.Distiller`
    expects as one binary logit), a rating for `output="rating"`. Only
    built-in and tfkd-registered layers are used, so the model converts to
    LiteRT and loads with `safe_mode=True`.

    Args:
        spec: `FeatureSpec`. The inputs.
        embedding_dim: int. Width of every embedding. Defaults to `8`.
        hidden: sequence of int. MLP widths. Defaults to `(64, 32)`.
        cross_layers: int. DCN-v2 cross layers (`keras_rs.layers.FeatureCross`)
            before the MLP. Defaults to `0`.
        dropout: float. Dropout after each MLP layer. Defaults to `0.0`.
        output: str. `"logit"` or `"rating"`. Defaults to `"logit"`.
        name: str or None. Model name. Defaults to `None`
            (`"ranking_model"`).

    Returns:
        A Functional `keras.Model` mapping a dict of feature tensors
        (int32 ids, float32 numbers) to `(batch, 1)` float32.

    Raises:
        TypeError: if `spec` is not a `FeatureSpec` or a width not an int.
        ValueError: on non-positive widths, `dropout` outside [0, 1) or an
            unknown `output`.

    Example:

    ```python
    data = tfkd.datasets.synthetic_movielens()
    model = ranking_model(data.spec, cross_layers=1)
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(data.train, epochs=1)
    ```

    References:
        - [Wang et al., 2020](https://arxiv.org/abs/2008.13535) (DCN-v2).
    """
    _validate(spec, embedding_dim, cross_layers, dropout, output)
    hidden = validation_utils.validate_hidden(hidden)
    inputs = embedding_utils.feature_inputs(spec.features)
    x0 = _first_layer(inputs, spec.features, embedding_dim)
    x = x0
    for i in range(cross_layers):
        x = keras_rs.layers.FeatureCross(name=f"cross_{i}")(x0, x)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    bias = RATING_BIAS_INIT if output == "rating" else 0.0
    outputs = keras.layers.Dense(
        1,
        bias_initializer=keras.initializers.Constant(bias),
        name=output,
    )(x)
    return keras.Model(inputs, outputs, name=name or "ranking_model")


def _first_layer(inputs, features, embedding_dim):
    """Embeddings of the id features, then the scaled numeric features."""
    ids = [f for f in features if not f.is_numeric]
    numbers = [f for f in features if f.is_numeric]
    parts = []
    if ids:
        parts.append(embedding_utils.embed_features(
            {f.name: inputs[f.name] for f in ids}, ids, embedding_dim
        ))
    if numbers:
        parts.append(embedding_utils.numeric_block(inputs, numbers))
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(name="features")(parts)
