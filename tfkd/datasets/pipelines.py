"""tf.data pipelines from encoded frames, shared by every loader."""

from collections.abc import Iterable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tfkd import teachers
from tfkd._internal.arguments import validate_positive_int
from tfkd.datasets.feature_spec import FeatureSpec


def features_from_frame(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    names: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """Returns the model inputs of `frame` as numpy arrays.

    Args:
        frame: pandas DataFrame with one column per feature of `spec`; a
            list feature's cells hold sequences of length `feature.length`.
        spec: `FeatureSpec`.
        names: iterable of str or None. Only these features (e.g. one
            tower's inputs); `None` means all. Defaults to `None`.

    Returns:
        dict mapping feature name to an int32 array of shape `(n,)` for a
        scalar id feature or `(n, length)` for a list feature, and a
        float32 array of shape `(n,)` for a numeric feature.

    Example:

    ```python
    x = features_from_frame(data.frames["test"], data.spec)
    logits = model.predict(x)
    ```
    """
    features = {}
    for feature in spec.features:
        if names is not None and feature.name not in names:
            continue
        column = frame[feature.name].to_numpy()
        if feature.is_numeric:
            values = column.astype(np.float32)
        elif feature.is_list:
            values = np.zeros((len(frame), feature.length), np.int32)
            if len(frame):
                values = np.stack(column).astype(np.int32)
        else:
            values = column.astype(np.int32)
        features[feature.name] = values
    return features


def frame_to_dataset(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    batch_size: int = 256,
    shuffle: bool = False,
    seed: int | None = None,
    teacher: keras.Model | None = None,
) -> tf.data.Dataset:
    """Builds a batched, prefetched `(features, label)` dataset.

    Args:
        frame: pandas DataFrame of encoded features and `spec.label`.
        spec: `FeatureSpec`.
        batch_size: int. Examples per batch. Defaults to `256`.
        shuffle: bool. Reshuffle the whole frame every epoch. Defaults to
            `False`.
        seed: int or None. Shuffle seed. Defaults to `None`.
        teacher: `keras.Model` or None. When given, it scores every row
            once and its logits become the feature `"teacher_logits"`
            (`tfkd.teachers.cache_logits`), for a Distiller whose teacher
            is `tfkd.teachers.CachedLogits`: its validation rows need them
            too. Defaults to `None`.

    Returns:
        `tf.data.Dataset` of `(dict of tensors, float32 label)`: int32
        ids, float32 numeric features.

    Raises:
        ValueError: if `batch_size < 1`.

    Example:

    ```python
    ds = frame_to_dataset(frames["train"], spec, shuffle=True, seed=0)
    model.fit(ds)
    ```
    """
    features = features_from_frame(frame, spec)
    if teacher is not None:
        features = teachers.cache_logits(teacher, features)
    labels = frame[spec.label].to_numpy(np.float32)
    return batched((features, labels), batch_size, shuffle, seed)


def batched(tensors, batch_size, shuffle=False, seed=None):
    """Batches in-memory arrays, reshuffled every epoch when asked.

    The shuffle draws row positions and gathers each batch in one op: the
    same batches, in the same order, as shuffling the rows themselves
    (`from_tensor_slices(...).shuffle(n, seed)`), at a third of the input
    cost, which on a small student is most of a training step.

    Args:
        tensors: nest (tuple, dict) of arrays with the same first dimension.
        batch_size: int >= 1.
        shuffle: bool. A full shuffle of the rows, redrawn every epoch.
            Defaults to `False`.
        seed: int or None. Seeds the shuffle. Defaults to `None`.

    Returns:
        A prefetched `tf.data.Dataset` of batches with the nest of
        `tensors`.

    Example:

    ```python
    train = batched((features, labels), 256, shuffle=True, seed=0)
    ```
    """
    validate_positive_int("batch_size", batch_size)
    if not shuffle:
        dataset = tf.data.Dataset.from_tensor_slices(tensors)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    constants = tf.nest.map_structure(tf.convert_to_tensor, tensors)
    rows = int(tf.nest.flatten(constants)[0].shape[0])
    positions = tf.data.Dataset.range(rows).shuffle(
        max(rows, 1), seed=seed, reshuffle_each_iteration=True
    )

    def gather(batch):
        return tf.nest.map_structure(lambda t: tf.gather(t, batch), constants)

    return positions.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)


# Where tfkd's loaders leave the spec on the datasets they return, so an
# export fed `data.test` carries the vocabularies without being told.
SPEC_ATTRIBUTE = "tfkd_feature_spec"


def with_spec(dataset, spec):
    """Returns `dataset`, marked as encoded with `spec` (`spec_of`)."""
    setattr(dataset, SPEC_ATTRIBUTE, spec)
    return dataset


def spec_of(dataset):
    """The `FeatureSpec` a tfkd loader encoded `dataset` with, or None."""
    return getattr(dataset, SPEC_ATTRIBUTE, None)
