"""Transfer sets: unlabelled user-item pairs that carry soft targets only.

Distillation can teach the student on more rows than the labelled ones:
the teacher scores user-item pairs nobody rated, and the student learns
those scores. `transfer_set` draws such pairs and joins their side
features; `with_transfer_set` mixes them with the labelled training rows
into one dataset whose weights make the transfer rows train the soft
term only (see `tfkd.distillers.sample_weights`).
"""

import math

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tfkd import teachers
from tfkd._internal.arguments import validate_positive_int
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.pipelines import batched
from tfkd.datasets.pipelines import features_from_frame

SAMPLING = ("popularity", "uniform")
USER_KEY = "user_id"
ITEM_KEY = "item_id"
LOGITS_KEY = "teacher_logits"
# A transfer row's label is never read (its hard weight is 0); 0 is a
# valid label for every pointwise kind, so the label check stays quiet.
PLACEHOLDER_LABEL = 0.0
# Each sampling round draws this many candidates per pair still needed;
# popularity draws repeat popular pairs, which are then thrown away.
CANDIDATES_PER_PAIR = 2
MAX_ROUNDS = 100
_NO_TABLES_FIX = (
    "Build the unlabelled rows yourself and train on them with "
    "`sample_weight={'student': 0, 'distillation': 1}`."
)


def transfer_set(
    data: MovieLensData,
    teacher: keras.Model | None = None,
    size: float = 5.0,
    seed: int = 0,
    sampling: str = "popularity",
    logits_key: str = LOGITS_KEY,
) -> pd.DataFrame:
    """Draws unobserved user-item pairs with their side features.

    Each row is a (user, item) pair that is in no split of `data.frames`
    (train, val or test), so the student never trains on a rated pair's
    features without its label, nor on a row it is evaluated on. Pairs
    are distinct. The user's columns come from `data.users` and the
    item's from `data.items`, so every row holds every input of
    `data.spec`. MovieLens ctr data drops 3-star ratings, which no frame
    keeps: such a pair can be drawn.

    `sampling="popularity"` (the default) draws the user and the item
    independently, each in proportion to its number of training rows:
    the transfer rows follow the labelled rows' (and the test rows')
    users and items, so the soft targets land where the student is
    evaluated, and no row holds a user or item the teacher never trained
    on (whose id embedding is still its initial value). `"uniform"`
    draws users and items uniformly from the whole tables: it covers the
    catalogue a recommender ranks, long tail and unrated items included.

    Args:
        data: `tfkd.datasets.MovieLensData` with user and item tables
            (`movielens_100k`, `synthetic_movielens`).
        teacher: `keras.Model` or None. When given, its logits for each
            row are added as the column `logits_key` (one array per row),
            through `tfkd.teachers.cache_logits`. Defaults to `None`.
        size: float > 0. Rows as a multiple of the training rows.
            Defaults to `5.0`.
        seed: int. Seeds the draw. Defaults to `0`.
        sampling: str. `"popularity"` or `"uniform"`. Defaults to
            `"popularity"`.
        logits_key: str. Name of the logits column. Defaults to
            `"teacher_logits"`.

    Returns:
        pandas DataFrame: one column per feature of `data.spec`, the label
        column `data.spec.label` holding the placeholder 0.0, and
        `logits_key` when a teacher is given.

    Raises:
        TypeError: if `data` has no frames and tables, or `size` is not a
            number.
        ValueError: on data without user or item tables (e.g.
            `from_files` data), a retrieval task, an unknown `sampling`,
            a `size` that gives no row, or more rows than there are
            unobserved pairs to draw.

    Example:

    ```python
    rows = tfkd.datasets.transfer_set(data, teacher, size=5.0)
    rows[["user_id", "item_id", "teacher_logits"]].head()
    ```
    """
    users, items = _tables(data)
    rows = _row_count(size, len(data.frames["train"]))
    if sampling not in SAMPLING:
        raise ValueError(
            f"`sampling` must be one of {SAMPLING}. "
            f"Received: sampling={sampling!r}"
        )
    user_p, item_p = _probabilities(data, users, items, sampling)
    observed = _observed_keys(data, users, items)
    _check_drawable(user_p, item_p, observed, rows, size)
    rng = np.random.default_rng(seed)
    keys = _draw_pairs(rng, user_p, item_p, observed, rows)
    if len(keys) < rows:
        raise ValueError(
            f"Could not draw {rows} distinct unobserved pairs in "
            f"{MAX_ROUNDS} rounds ({len(keys)} found): the draws keep "
            "repeating the same pairs. Pass a smaller `size`, or "
            f"`sampling='uniform'`. Received: size={size}, "
            f"sampling={sampling!r}"
        )
    frame = _join(data.spec, users, items, keys // len(items),
                  keys % len(items))
    if teacher is not None:
        frame[logits_key] = list(_score(teacher, frame, data.spec,
                                        logits_key))
    return frame


def with_transfer_set(
    data: MovieLensData,
    teacher: keras.Model | None = None,
    size: float = 5.0,
    seed: int = 0,
    sampling: str = "popularity",
    batch_size: int = 256,
    logits_key: str = LOGITS_KEY,
) -> tf.data.Dataset:
    """The training rows plus a transfer set, shuffled together, batched.

    Each element is `(features, label, sample_weight)` with
    `sample_weight = {"student": w_hard, "distillation": 1.0}`: `w_hard`
    is 1 on a labelled row and 0 on a transfer row, so a transfer row
    trains only the Distiller's soft term and counts in no metric. Each
    term is averaged over all the rows of the batch (see
    `tfkd.Distiller`), so with `size=5.0` about one row in six carries a
    hard label and the hard term is about 1/6 of what the same labelled
    rows alone would give.

    Args:
        data: `tfkd.datasets.MovieLensData` with user and item tables.
        teacher: `keras.Model` or None. When given, every row (labelled
            and transfer) gets the feature `logits_key`, the teacher's
            logits, so `tfkd.teachers.CachedLogits` can stand in for the
            teacher; models that do not declare it ignore it. Defaults to
            `None` (the Distiller's teacher scores each batch).
        size: float > 0. Transfer rows per training row. Defaults to
            `5.0`.
        seed: int. Seeds the draw and the shuffle. Defaults to `0`.
        sampling: str. As in `transfer_set`. Defaults to `"popularity"`.
        batch_size: int >= 1. Defaults to `256`.
        logits_key: str. Defaults to `"teacher_logits"`.

    Returns:
        `tf.data.Dataset` of `(dict of tensors, float32 label, dict of
        float32 weights)`, reshuffled every epoch.

    Raises:
        TypeError, ValueError: as `transfer_set`, and on a `batch_size`
            that is not an int >= 1.

    Example:

    ```python
    train = tfkd.datasets.with_transfer_set(data, size=5.0)
    distiller.fit(train, validation_data=data.val, epochs=5)
    ```
    """
    validate_positive_int("batch_size", batch_size)
    transfer = transfer_set(data, teacher, size, seed, sampling, logits_key)
    labelled = data.frames["train"]
    spec = data.spec
    features = _concat(features_from_frame(labelled, spec),
                       features_from_frame(transfer, spec))
    if teacher is not None:
        features[logits_key] = np.concatenate([
            _score(teacher, labelled, spec, logits_key),
            np.stack(transfer[logits_key].to_numpy()),
        ])
    labels = np.concatenate([
        labelled[spec.label].to_numpy(np.float32),
        transfer[spec.label].to_numpy(np.float32),
    ])
    hard = np.zeros(len(labels), np.float32)
    hard[:len(labelled)] = 1.0
    weights = {"student": hard, "distillation": np.ones_like(hard)}
    return batched((features, labels, weights), batch_size, shuffle=True,
                   seed=seed)


def has_tables(data: object) -> bool:
    """Whether `data` has the user and item tables a transfer set needs.

    Args:
        data: any object; `MovieLensData` from `movielens_100k` or
            `synthetic_movielens` has them, `from_files` data does not.

    Returns:
        bool: True when `data` has frames, a spec, and non-empty
        `users` / `items` tables keyed by `user_id` / `item_id`.

    Example:

    ```python
    if tfkd.datasets.transfer.has_tables(data):
        train = tfkd.datasets.with_transfer_set(data, teacher)
    ```
    """
    users = getattr(data, "users", None)
    items = getattr(data, "items", None)
    if not (hasattr(data, "frames") and hasattr(data, "spec")
            and isinstance(users, pd.DataFrame)
            and isinstance(items, pd.DataFrame)):
        return False
    return (USER_KEY in users.columns and ITEM_KEY in items.columns
            and not users.empty and not items.empty)


def _tables(data):
    for name in ("frames", "users", "items", "spec"):
        if not hasattr(data, name):
            raise TypeError(
                "`data` must be a `tfkd.datasets.MovieLensData` (from "
                "`movielens_100k` or `synthetic_movielens`). "
                f"Received: data of type {type(data).__name__}"
            )
    users, items = data.users, data.items
    if not has_tables(data):
        raise ValueError(
            "A transfer set joins each drawn pair's side features from "
            f"`data.users` (keyed by '{USER_KEY}') and `data.items` (keyed "
            f"by '{ITEM_KEY}'); this data has no such tables (data from "
            "`tfkd.datasets.from_files` has none). " + _NO_TABLES_FIX +
            f" Received: data.users columns {list(users.columns)}, "
            f"data.items columns {list(items.columns)}"
        )
    if data.spec.task == "retrieval":
        raise ValueError(
            "Transfer sets are for pointwise tasks ('ctr', 'rating'), "
            "which the Distiller scores row by row. "
            f"Received: data.spec.task={data.spec.task!r}"
        )
    for table, key in ((users, USER_KEY), (items, ITEM_KEY)):
        if table[key].duplicated().any():
            raise ValueError(
                f"The side-feature table keyed by '{key}' must hold one "
                "row per id. Drop the duplicates. Received: duplicated "
                f"ids {table[key][table[key].duplicated()].head().tolist()}"
            )
    return users.reset_index(drop=True), items.reset_index(drop=True)


def _row_count(size, train_rows):
    if isinstance(size, bool) or not isinstance(size, (int, float,
                                                       np.number)):
        raise TypeError(
            "`size` must be a number (transfer rows per training row). "
            f"Received: size={size!r}"
        )
    rows = round(size * train_rows) if math.isfinite(size) else 0
    if size <= 0 or rows < 1:
        raise ValueError(
            "`size` must be a finite number > 0 that gives at least one "
            f"row ({train_rows} training rows). Received: size={size}"
        )
    return int(rows)


def _probabilities(data, users, items, sampling):
    if sampling == "uniform":
        return (np.full(len(users), 1.0 / len(users)),
                np.full(len(items), 1.0 / len(items)))
    train = data.frames["train"]
    result = []
    for table, key in ((users, USER_KEY), (items, ITEM_KEY)):
        counts = train[key].value_counts()
        weights = table[key].map(counts).fillna(0.0).to_numpy(np.float64)
        result.append(weights / weights.sum())
    return tuple(result)


def _observed_keys(data, users, items):
    """Sorted keys `user_row * len(items) + item_row` of every rated pair."""
    user_index = pd.Index(users[USER_KEY])
    item_index = pd.Index(items[ITEM_KEY])
    keys = []
    for frame in data.frames.values():
        u = user_index.get_indexer(frame[USER_KEY])
        i = item_index.get_indexer(frame[ITEM_KEY])
        known = (u >= 0) & (i >= 0)
        keys.append(u[known].astype(np.int64) * len(items) + i[known])
    return np.unique(np.concatenate(keys))


def _check_drawable(user_p, item_p, observed, rows, size):
    """Refuses more rows than there are unobserved pairs to draw from."""
    num_items = len(item_p)
    rated = (user_p[observed // num_items] > 0) & (
        item_p[observed % num_items] > 0
    )
    drawable = int(np.count_nonzero(user_p) * np.count_nonzero(item_p)
                   - np.count_nonzero(rated))
    if rows > drawable:
        raise ValueError(
            f"A transfer set of {rows} rows needs {rows} distinct unobserved "
            f"pairs, but the users and items it draws from have only "
            f"{drawable}. Pass a smaller `size`. Received: size={size}"
        )


def _draw_pairs(rng, user_p, item_p, observed, rows):
    """Up to `rows` distinct unobserved pair keys, in draw order.

    Fewer only when `MAX_ROUNDS` rounds of draws did not find enough.
    """
    num_items = len(item_p)
    taken = np.empty(0, np.int64)
    for _ in range(MAX_ROUNDS):
        need = rows - len(taken)
        if need == 0:
            break
        count = CANDIDATES_PER_PAIR * need
        keys = (rng.choice(len(user_p), count, p=user_p).astype(np.int64)
                * num_items + rng.choice(num_items, count, p=item_p))
        keys = keys[~np.isin(keys, observed)]
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
        keys = keys[~np.isin(keys, taken)]
        taken = np.concatenate([taken, keys[:need]])
    return taken


def _join(spec, users, items, user_rows, item_rows):
    columns = {}
    for feature in spec.features:
        if feature.name in users.columns:
            source, rows = users, user_rows
        elif feature.name in items.columns:
            source, rows = items, item_rows
        else:
            raise ValueError(
                f"The feature '{feature.name}' of `data.spec` is in neither "
                "`data.users` nor `data.items`, so a drawn pair has no "
                "value for it. " + _NO_TABLES_FIX +
                f" Received: data.users columns {list(users.columns)}, "
                f"data.items columns {list(items.columns)}"
            )
        columns[feature.name] = source[feature.name].to_numpy()[rows]
    columns[spec.label] = np.full(len(user_rows), PLACEHOLDER_LABEL,
                                  np.float32)
    return pd.DataFrame(columns)


def _score(teacher, frame, spec, logits_key):
    features = features_from_frame(frame, spec)
    return teachers.cache_logits(teacher, features, key=logits_key)[
        logits_key
    ]


def _concat(first, second):
    return {name: np.concatenate([first[name], second[name]])
            for name in first}
