"""The model-ready values of file columns: one rule, in NumPy and in tf.

`from_files` encodes a whole frame with NumPy; `stream_files` encodes
blocks inside tf.data. Both read every cell as a float64 first (exact for
ids up to 2**53), so the two give the same int32 ids and float32 numbers.
"""

import numpy as np
import pandas as pd
import tensorflow as tf

INT32_MAX = np.iinfo(np.int32).max


def encode_frame(frame, spec):
    """Model-ready columns: int32 ids, float32 numbers and label.

    Args:
        frame: pandas DataFrame with the spec's features and label.
        spec: `FeatureSpec`.

    Returns:
        pandas DataFrame of the encoded features and `spec.label`.
    """
    encoded = {}
    for feature in spec.features:
        values = frame[feature.name].to_numpy(np.float64)
        # Ids past int32 stay out of range (read as unknown), rather than
        # wrapping round onto a real id.
        encoded[feature.name] = (
            values.astype(np.float32) if feature.is_numeric
            else np.minimum(values, INT32_MAX).astype(np.int32)
        )
    encoded[spec.label] = frame[spec.label].to_numpy(np.float32)
    return pd.DataFrame(encoded)


def encode_block(values, spec):
    """`encode_frame` inside tf.data, on a float64 block of rows.

    Args:
        values: float64 tensor `(rows, len(spec.features) + 1)`: the
            features in spec order, then the label.
        spec: `FeatureSpec`.

    Returns:
        `(features, label)`: dict of int32 / float32 tensors `(rows,)`
        and a float32 label `(rows,)`.
    """
    features = {}
    for j, feature in enumerate(spec.features):
        column = values[:, j]
        features[feature.name] = (
            tf.cast(column, tf.float32) if feature.is_numeric
            else tf.cast(tf.minimum(column, INT32_MAX), tf.int32)
        )
    return features, tf.cast(values[:, -1], tf.float32)
