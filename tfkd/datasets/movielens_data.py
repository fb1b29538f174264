"""The value every loader returns: MovieLens, synthetic, your own files."""

import dataclasses
from collections.abc import Mapping
from typing import Any

import pandas as pd
import tensorflow as tf

from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.pipelines import frame_to_dataset
from tfkd.datasets.pipelines import with_spec


@dataclasses.dataclass
class MovieLensData:
    """Train/val/test datasets plus the frames and schema behind them.

    Args:
        train: `tf.data.Dataset`. Shuffled with the loader's seed.
        val: `tf.data.Dataset`. Not shuffled.
        test: `tf.data.Dataset`. Not shuffled.
        frames: dict of pandas DataFrames `"train"`, `"val"`, `"test"` with
            the encoded feature columns and the label (`label`, `rating`
            and `timestamp` for MovieLens; `spec.label` for
            `from_files`).
        spec: `FeatureSpec`. The model inputs and label.
        users: pandas DataFrame. Encoded user features, one row per user
            (empty for `from_files`).
        items: pandas DataFrame. Encoded item features, one row per item
            (the candidate table for retrieval; empty for `from_files`).
        ground_truth: dict or None. Synthetic data only: per split, the true
            probability (ctr), expected rating (rating) or affinity logit
            (retrieval) of each frame row.

    Example:

    ```python
    data = movielens_100k(task="ctr")
    model.fit(data.train, validation_data=data.val)
    ```
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    frames: Mapping[str, pd.DataFrame]
    spec: FeatureSpec
    users: pd.DataFrame
    items: pd.DataFrame
    ground_truth: dict[str, Any] | None = None

    @classmethod
    def from_frames(cls, frames, spec, users, items, batch_size, seed,
                    ground_truth=None):
        """Builds the datasets from split frames (train shuffled by seed)."""
        datasets = {
            name: with_spec(frame_to_dataset(
                frame,
                spec,
                batch_size=batch_size,
                shuffle=name == "train",
                seed=seed,
            ), spec)
            for name, frame in frames.items()
        }
        return cls(
            train=datasets["train"],
            val=datasets["val"],
            test=datasets["test"],
            frames=frames,
            spec=spec,
            users=users,
            items=items,
            ground_truth=ground_truth,
        )
