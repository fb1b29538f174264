"""Mean of the embeddings of a padded id list, ignoring padding."""

import keras
from keras import ops

from tfkd.api_export import tfkd_export


def masked_mean(embeddings, ids):
    """Mean of `embeddings` over the positions whose id is not 0.

    Args:
        embeddings: float tensor `(batch, length, dim)`.
        ids: integer tensor `(batch, length)`; 0 marks padding.

    Returns:
        float tensor `(batch, dim)`; zeros for a row of padding only.

    Example:

    ```python
    masked_mean(np.ones((1, 3, 2)), np.array([[4, 2, 0]]))  # [[1., 1.]]
    ```
    """
    mask = ops.cast(ops.not_equal(ids, 0), embeddings.dtype)
    total = ops.sum(embeddings * ops.expand_dims(mask, -1), axis=1)
    count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    # Not `total / count`: in full-int8 LiteRT that DIV takes the output
    # scale of what follows (a Concatenate), and the int8 DIV kernel
    # saturates to +-127 when a small numerator meets a coarse output scale
    # (logits off by 0.3 on a student with a wide user table). Here only
    # the constant 1 is divided, and the mean is an int8 MUL.
    return total * (1.0 / count)


@tfkd_export("tfkd.models.MaskedMeanPooling")
class MaskedMeanPooling(keras.layers.Layer):
    """Averages embeddings over the positions whose id is not 0.

    ```
    out[b] = sum_l [ids[b, l] != 0] * emb[b, l] / max(1, #non-zero ids[b])
    ```

    A row with no ids (all padding) pools to zeros. Written as a layer
    rather than a Keras mask so the computation is explicit in the graph
    LiteRT converts.

    Args:
        None beyond the base `keras.layers.Layer` arguments.

    Returns:
        Called on `[embeddings (batch, length, dim), ids (batch, length)]`,
        a tensor of shape `(batch, dim)`.

    Example:

    ```python
    ids = keras.Input((6,), dtype="int32")
    emb = keras.layers.Embedding(20, 8)(ids)
    pooled = MaskedMeanPooling()([emb, ids])  # (batch, 8)
    ```
    """

    def call(self, inputs):
        embeddings, ids = inputs
        return masked_mean(embeddings, ids)

    def compute_output_shape(self, input_shape):
        embeddings_shape = input_shape[0]
        return (embeddings_shape[0], embeddings_shape[-1])
