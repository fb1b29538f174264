"""Maps out-of-vocabulary ids to the unknown row 0."""

import keras
from keras import ops

from tfkd.api_export import tfkd_export


def safe_ids(ids, vocabulary_size):
    """Returns `ids` with values outside `[0, vocabulary_size)` set to 0.

    Args:
        ids: integer tensor.
        vocabulary_size: int, or an int array broadcastable to `ids` (one
            vocabulary size per position, as `FeatureEmbedding` uses).

    Returns:
        int32 tensor with the shape of `ids`.

    Example:

    ```python
    safe_ids(np.array([[-1, 2], [7, 3]]), np.array([5, 3]))  # [[0, 2], [0, 0]]
    ```
    """
    ids = ops.cast(ids, "int32")
    valid = ops.logical_and(
        ops.greater_equal(ids, 0),
        ops.less(ids, vocabulary_size),
    )
    # A scalar 0, not zeros_like(ids): LiteRT then needs no ZEROS_LIKE op.
    return ops.where(valid, ids, 0)


@tfkd_export("tfkd.models.SafeIds")
class SafeIds(keras.layers.Layer):
    """Replaces ids outside `[0, vocabulary_size)` with 0 (unknown).

    An embedding lookup with an id past the table is undefined on LiteRT (it
    may read out of bounds rather than fail), so every tfkd model routes its
    ids through this layer: an unseen user or item is scored as unknown.

    ```
    safe(id) = id if 0 <= id < vocabulary_size else 0
    ```

    Args:
        vocabulary_size: int. Rows in the embedding table it feeds.

    Returns:
        int32 tensor with the shape of the input.

    Raises:
        ValueError: if `vocabulary_size < 1`.

    Example:

    ```python
    SafeIds(5)(np.array([-1, 0, 3, 5]))  # [0, 0, 3, 0]
    ```
    """

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        if int(vocabulary_size) < 1:
            raise ValueError(
                "`vocabulary_size` must be >= 1. "
                f"Received: vocabulary_size={vocabulary_size}"
            )
        self.vocabulary_size = int(vocabulary_size)

    def call(self, ids):
        return safe_ids(ids, self.vocabulary_size)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary_size": self.vocabulary_size})
        return config
