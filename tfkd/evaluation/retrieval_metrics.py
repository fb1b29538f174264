"""Retrieval metrics: HR@K and NDCG@K against sampled negatives or the
whole catalogue, and the evaluation of a two-tower model on them."""

import keras
import numpy as np
import numpy.typing as npt

from tfkd._internal import model_utils
from tfkd._internal.arguments import validate_positive_int
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.pipelines import features_from_frame
from tfkd.evaluation.ranking_metrics import as_1d


def positive_ranks(
    positive_scores: npt.ArrayLike, negative_scores: npt.ArrayLike
) -> np.ndarray:
    """1-based rank of each positive among its row of negatives.

    A tie with a negative counts against the positive (pessimistic), so a
    model that scores everything the same ranks last rather than first.
    Negatives scored `-inf` (masked out) never outrank.

    Args:
        positive_scores: array-like `(n,)`.
        negative_scores: array-like `(n, m)`.

    Returns:
        int array `(n,)` with values in `1..m + 1`.
    """
    positive = as_1d("positive_scores", positive_scores)
    negative = np.asarray(negative_scores, dtype=np.float64)
    if negative.ndim != 2 or negative.shape[0] != positive.shape[0]:
        raise ValueError(
            "`negative_scores` must have shape (n, m) with n = "
            f"len(positive_scores) = {len(positive)}. "
            f"Received shape {negative.shape}"
        )
    return 1 + (negative >= positive[:, None]).sum(axis=1)


def hit_rate_at_k(
    positive_scores: npt.ArrayLike,
    negative_scores: npt.ArrayLike,
    k: int = 10,
) -> float:
    """Share of rows whose positive ranks in the top `k` (HR@K).

    Leave-one-out protocol: one held-out positive per user, scored against
    sampled negatives (`sample_negatives`) or against every other item
    (full ranking; mask the user's other items with `-inf`).

    Args:
        positive_scores: array-like `(n,)`. Score of each held-out item.
        negative_scores: array-like `(n, m)`. Scores of its negatives.
        k: int. Cut-off. Defaults to `10`.

    Returns:
        float in [0, 1].

    Raises:
        TypeError: if `k` is not an int.
        ValueError: if `k < 1` or shapes disagree.

    Example:

    ```python
    hit_rate_at_k([0.5, 0.1], [[0.9, 0.2], [0.3, 0.4]], k=2)  # 0.5
    ```
    """
    validate_positive_int("k", k)
    ranks = positive_ranks(positive_scores, negative_scores)
    return float(np.mean(ranks <= k))


def ndcg_at_k(
    positive_scores: npt.ArrayLike,
    negative_scores: npt.ArrayLike,
    k: int = 10,
) -> float:
    """NDCG@K with one relevant item per row.

    ```
    NDCG@K = mean(1 / log2(rank + 1) if rank <= K else 0)
    ```

    The ideal DCG is 1 (the positive at rank 1), so no further division.

    Args:
        positive_scores: array-like `(n,)`.
        negative_scores: array-like `(n, m)`.
        k: int. Cut-off. Defaults to `10`.

    Returns:
        float in [0, 1].

    Raises:
        TypeError: if `k` is not an int.
        ValueError: if `k < 1` or shapes disagree.

    Example:

    ```python
    ndcg_at_k([0.5], [[0.9, 0.8, 0.1]], k=10)  # rank 3: 1 / log2(4) = 0.5
    ```
    """
    validate_positive_int("k", k)
    ranks = positive_ranks(positive_scores, negative_scores)
    gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    return float(gains.mean())


def sample_negatives(
    user_ids: npt.ArrayLike,
    interacted: dict[int, set[int]],
    vocabulary_size: int,
    num_negatives: int = 100,
    seed: int = 0,
) -> np.ndarray:
    """Draws, per row, items the user never interacted with.

    Args:
        user_ids: array-like `(n,)`. One user per evaluation row.
        interacted: dict mapping a user id to the set of its item ids (all
            splits, so no positive is drawn as a negative).
        vocabulary_size: int. Item ids are drawn from
            `1..vocabulary_size - 1`.
        num_negatives: int. Per row. Defaults to `100`.
        seed: int. Defaults to `0`.

    Returns:
        int32 array `(n, num_negatives)`, no repeats within a row.

    Raises:
        ValueError: if a user has fewer candidate items than
            `num_negatives`.

    Example:

    ```python
    sample_negatives([1], {1: {2}}, vocabulary_size=5, num_negatives=3)
    # a permutation of [1, 3, 4]
    ```
    """
    rng = np.random.default_rng(seed)
    all_items = np.arange(1, vocabulary_size)
    rows = []
    for user in np.asarray(user_ids):
        seen = np.fromiter(interacted.get(int(user), ()), dtype=np.int64)
        candidates = np.setdiff1d(all_items, seen, assume_unique=True)
        if len(candidates) < num_negatives:
            raise ValueError(
                f"User {user} has {len(candidates)} unseen items; expected "
                f">= num_negatives. Received: num_negatives={num_negatives}"
            )
        rows.append(rng.choice(candidates, num_negatives, replace=False))
    return np.asarray(rows, dtype=np.int32).reshape(-1, num_negatives)


def _interactions(frames):
    interacted = {}
    for frame in frames.values():
        pairs = zip(
            frame["user_id"].to_numpy(),
            frame["item_id"].to_numpy(),
            strict=True,
        )
        for user, item in pairs:
            interacted.setdefault(int(user), set()).add(int(item))
    return interacted


def evaluate_retrieval(
    model: keras.Model,
    data: MovieLensData,
    split: str = "test",
    k: int = 10,
    num_negatives: int | None = 100,
    seed: int = 0,
) -> dict[str, float]:
    """HR@K and NDCG@K of a two-tower model under leave-one-out.

    Each row of `data.frames[split]` is a user's held-out item. It is
    ranked against `num_negatives` sampled unseen items, or, with
    `num_negatives=None`, against every item the user never interacted
    with (full ranking).

    Args:
        model: a model with `user_model` and `item_model` towers (e.g.
            `tfkd.models.TwoTowerModel`).
        data: `MovieLensData` from a `task="retrieval"` loader.
        split: str. Frame to evaluate. Defaults to `"test"`.
        k: int. Cut-off. Defaults to `10`.
        num_negatives: int or None. Defaults to `100`.
        seed: int. Negative-sampling seed. Defaults to `0`.

    Returns:
        dict with `"hit_rate@{k}"` and `"ndcg@{k}"`.

    Example:

    ```python
    evaluate_retrieval(two_tower_model, data)  # {"hit_rate@10": ...}
    ```
    """
    frame = data.frames[split]
    users = _tower_outputs(model.user_model, frame, data.spec)
    items = _tower_outputs(
        model.item_model, data.items.sort_values("item_id"), data.spec
    )
    # Row 0 of the score table is the unknown item id.
    table = np.concatenate([np.zeros((1, items.shape[1])), items])
    positives = frame["item_id"].to_numpy()
    positive_scores = np.sum(users * table[positives], axis=1)
    interacted = _interactions(data.frames)
    if num_negatives is None:
        scores = users @ table.T
        scores[:, 0] = -np.inf
        for row, user in enumerate(frame["user_id"].to_numpy()):
            scores[row, list(interacted[int(user)])] = -np.inf
        negative_scores = scores
    else:
        negatives = sample_negatives(
            frame["user_id"].to_numpy(),
            interacted,
            data.spec.vocabulary_sizes["item_id"],
            num_negatives,
            seed,
        )
        negative_scores = np.einsum("nd,nmd->nm", users, table[negatives])
    return {
        f"hit_rate@{k}": hit_rate_at_k(positive_scores, negative_scores, k),
        f"ndcg@{k}": ndcg_at_k(positive_scores, negative_scores, k),
    }


def _tower_outputs(tower, frame, spec):
    """Runs a tower on the columns of `frame` that it takes as inputs."""
    features = features_from_frame(frame, spec, model_utils.input_names(tower))
    inputs = model_utils.select_inputs(tower, features, "tower")
    return np.asarray(tower.predict(inputs, verbose=0))
