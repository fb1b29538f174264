"""Synthetic MovieLens-shaped data drawn from a known ground truth."""

import numpy as np
import pandas as pd

from tfkd._internal.arguments import validate_positive_int
from tfkd.datasets import schema
from tfkd.datasets import splits
from tfkd.datasets.movielens_data import MovieLensData

NUM_GENDERS = 2
NUM_OCCUPATIONS = 21
NUM_DECADES = 8
NUM_GENRES = 19
MAX_GENRES_PER_ITEM = 3
LATENT_DIM = 4
# Scales of the ground-truth logit parts: the dot product of latent factors
# (std ~ LATENT_SCALE * sqrt(LATENT_DIM)) and each feature effect. Chosen so
# a small model fitted for two epochs on 4,000 rows beats chance clearly.
LATENT_SCALE = 0.6
FEATURE_EFFECT_SCALE = 0.6
ID_EFFECT_SCALE = 0.5
RATING_CENTER = 3.5
RATING_SLOPE = 0.7
RATING_NOISE = 0.5
# Retrieval picks items with probability ~ exp(logit / RETRIEVAL_TEMPERATURE).
RETRIEVAL_TEMPERATURE = 0.5
MIN_RETRIEVAL_PER_USER = 3
FIRST_TIMESTAMP = 874_724_710  # MovieLens-100K's first rating.


def _validate_sizes(num_users, num_items, num_ratings, task):
    for name, value in (
        ("num_users", num_users),
        ("num_items", num_items),
        ("num_ratings", num_ratings),
    ):
        validate_positive_int(name, value)
    if num_ratings > num_users * num_items:
        raise ValueError(
            "`num_ratings` must be <= num_users * num_items (pairs are "
            f"distinct). Received: num_ratings={num_ratings}, "
            f"num_users * num_items={num_users * num_items}"
        )
    per_user = num_ratings // num_users
    if task == "retrieval" and not (
        MIN_RETRIEVAL_PER_USER <= per_user <= num_items
    ):
        raise ValueError(
            "Retrieval needs num_ratings // num_users in "
            f"[{MIN_RETRIEVAL_PER_USER}, num_items] for leave-one-out. "
            f"Received: num_ratings // num_users={per_user}"
        )


def _draw_users(rng, num_users):
    return pd.DataFrame(
        {
            "user_id": np.arange(1, num_users + 1, dtype=np.int32),
            "age_bucket": rng.integers(
                1, schema.AGE_VOCABULARY_SIZE, num_users, dtype=np.int32
            ),
            "gender": rng.integers(
                1, NUM_GENDERS + 1, num_users, dtype=np.int32
            ),
            "occupation": rng.integers(
                1, NUM_OCCUPATIONS + 1, num_users, dtype=np.int32
            ),
        }
    )


def _draw_items(rng, num_items):
    genres = np.zeros((num_items, schema.GENRES_LENGTH), np.int32)
    counts = rng.integers(1, MAX_GENRES_PER_ITEM + 1, num_items)
    for row, count in enumerate(counts):
        picked = rng.choice(NUM_GENRES, size=count, replace=False) + 1
        genres[row, :count] = np.sort(picked)
    return pd.DataFrame(
        {
            "item_id": np.arange(1, num_items + 1, dtype=np.int32),
            "genres": list(genres),
            "release_year_bucket": rng.integers(
                1, NUM_DECADES + 1, num_items, dtype=np.int32
            ),
        }
    )


def _effect(rng, size):
    # Row 0 (unknown) has no effect, as an unknown id carries no signal.
    values = rng.normal(0.0, FEATURE_EFFECT_SCALE, size + 1)
    values[0] = 0.0
    return values


def _true_logits(rng, users, items):
    """The (num_users, num_items) ground-truth affinity logits."""
    num_users, num_items = len(users), len(items)
    user_factors = rng.normal(0.0, LATENT_SCALE, (num_users, LATENT_DIM))
    item_factors = rng.normal(0.0, LATENT_SCALE, (num_items, LATENT_DIM))
    user_bias = (
        _effect(rng, schema.AGE_VOCABULARY_SIZE)[users["age_bucket"]]
        + _effect(rng, NUM_GENDERS)[users["gender"]]
        + _effect(rng, NUM_OCCUPATIONS)[users["occupation"]]
        + rng.normal(0.0, ID_EFFECT_SCALE, num_users)
    )
    genres = np.stack(items["genres"].to_numpy())
    genre_effect = _effect(rng, NUM_GENRES)[genres]
    item_bias = (
        _effect(rng, NUM_DECADES)[items["release_year_bucket"]]
        + genre_effect.sum(1) / np.maximum((genres > 0).sum(1), 1)
        + rng.normal(0.0, ID_EFFECT_SCALE, num_items)
    )
    return (
        user_factors @ item_factors.T
        + user_bias[:, None]
        + item_bias[None, :]
    )


def _draw_pairs(rng, logits, num_ratings, task):
    num_users, num_items = logits.shape
    if task != "retrieval":
        flat = rng.choice(num_users * num_items, num_ratings, replace=False)
        return flat // num_items, flat % num_items
    # Gumbel top-k: each user's items drawn without replacement with
    # probability proportional to exp(logit / temperature).
    per_user = num_ratings // num_users
    gumbel = rng.gumbel(size=logits.shape)
    keys = logits / RETRIEVAL_TEMPERATURE + gumbel
    items = np.argsort(-keys, axis=1)[:, :per_user]
    users = np.repeat(np.arange(num_users), per_user)
    return users, items.reshape(-1)


def _label(rng, true_logit, task):
    """Returns `(label, rating, ground truth)` for each drawn pair."""
    n = len(true_logit)
    if task == "ctr":
        probability = 1.0 / (1.0 + np.exp(-true_logit))
        label = (rng.random(n) < probability).astype(np.float32)
        return label, np.where(label > 0, 5.0, 1.0), probability
    if task == "rating":
        expected = np.clip(
            RATING_CENTER + RATING_SLOPE * true_logit, 1.0, 5.0
        )
        noisy = expected + rng.normal(0.0, RATING_NOISE, n)
        rating = np.clip(np.round(noisy), 1.0, 5.0).astype(np.float32)
        return rating, rating, expected
    return np.ones(n, np.float32), np.full(n, 5.0), true_logit


def synthetic_movielens(
    num_users: int = 200,
    num_items: int = 300,
    num_ratings: int = 5000,
    task: str = "ctr",
    seed: int = 0,
    batch_size: int = 256,
    split: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> MovieLensData:
    """Draws MovieLens-shaped data from a known latent-factor model.

    Same feature names, dtypes, shapes and return type as `movielens_100k`,
    so every model and test written for one runs on the other. The truth:

    ```
    logit(u, i) = p_u . q_i + b(age_u) + b(gender_u) + b(occupation_u)
                  + b_u + b(decade_i) + mean_g b(g) + b_i
    ctr:       label ~ Bernoulli(sigmoid(logit)); truth = sigmoid(logit)
    rating:    truth = clip(3.5 + 0.7 logit, 1, 5); label = round(truth +
               N(0, 0.5)) clipped to 1..5
    retrieval: each user picks num_ratings // num_users items without
               replacement, P ~ exp(logit / 0.5); truth = logit; label 1
    ```

    Args:
        num_users: int. Defaults to `200`.
        num_items: int. Defaults to `300`.
        num_ratings: int. Distinct (user, item) rows. Defaults to `5000`.
        task: str. `"ctr"`, `"rating"` or `"retrieval"`. Defaults to `"ctr"`.
        seed: int. Seeds the truth, the draws, the split and the train
            shuffle. Defaults to `0`.
        batch_size: int. Defaults to `256`.
        split: str or None. As in `movielens_100k`. Defaults to `None`.
        val_fraction: float. Defaults to `0.1`.
        test_fraction: float. Defaults to `0.1`.

    Returns:
        `MovieLensData` whose `ground_truth[name]` is the true probability,
        expected rating or logit of each row of `frames[name]`.

    Raises:
        TypeError: if a size is not an int.
        ValueError: on an unknown task or split, or impossible sizes.

    Example:

    ```python
    data = synthetic_movielens(task="ctr", seed=0)
    model.fit(data.train, epochs=2)
    ```
    """
    schema.validate_task(task)
    split = splits.resolve_split(task, split)
    splits.validate_fractions(val_fraction, test_fraction)
    _validate_sizes(num_users, num_items, num_ratings, task)
    rng = np.random.default_rng(seed)
    users = _draw_users(rng, num_users)
    items = _draw_items(rng, num_items)
    logits = _true_logits(rng, users, items)
    user_rows, item_rows = _draw_pairs(rng, logits, num_ratings, task)
    label, rating, truth = _label(rng, logits[user_rows, item_rows], task)
    timestamps = FIRST_TIMESTAMP + np.sort(
        rng.integers(0, 10_000_000, len(user_rows))
    )
    interactions = pd.concat(
        [
            users.iloc[user_rows].reset_index(drop=True),
            items.iloc[item_rows].reset_index(drop=True),
        ],
        axis=1,
    )[list(schema.FEATURE_NAMES)].assign(
        rating=rating,
        timestamp=rng.permutation(timestamps),
        label=label,
        ground_truth=truth,
    )
    frames = splits.split_frame(
        interactions, split, val_fraction, test_fraction, seed
    )
    ground_truth = {
        name: frame.pop("ground_truth").to_numpy()
        for name, frame in frames.items()
    }
    sizes = {
        "user_id": num_users + 1,
        "item_id": num_items + 1,
        "age_bucket": schema.AGE_VOCABULARY_SIZE,
        "gender": NUM_GENDERS + 1,
        "occupation": NUM_OCCUPATIONS + 1,
        "release_year_bucket": NUM_DECADES + 1,
        "genres": NUM_GENRES + 1,
    }
    return MovieLensData.from_frames(
        frames,
        schema.make_spec(task, sizes),
        users,
        items,
        batch_size=batch_size,
        seed=seed,
        ground_truth=ground_truth,
    )
