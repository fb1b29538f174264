"""The teacher's top-K lists that `RetrievalDistiller(method="ranking")`
teaches, with the catalogue's item features to score them."""

import numpy as np
from keras import ops

from tfkd._internal import model_utils
from tfkd.export import retrieval_inputs

ITEM_ID = "item_id"
USER_ID = "user_id"
# Keys under which the tables sit in the distiller's weights store, apart
# from the numbered Keras variables.
STORE_PREFIX = "ranking_"
TOP_K_KEY = STORE_PREFIX + "top_k"
ITEM_KEY_PREFIX = STORE_PREFIX + "item."
# Users scored by the teacher at once when ranking the catalogue.
USER_CHUNK = 1024


class RankingTargets:
    """Each user's teacher top-K as catalogue rows, and item features.

    Candidates are referred to by their row in the catalogue (0..M-1),
    so the step gathers features by row and never maps ids.

    Args:
        top_k_rows: int array `(num_user_ids, K)`. Row `u` holds user id
            `u`'s top-K candidate rows, best first, or -1 where the user
            has no list.
        items: dict of the student item tower's input name to an array
            with `M` rows, one per candidate.
    """

    def __init__(self, top_k_rows, items):
        self.top_k_rows = np.asarray(top_k_rows, dtype=np.int32)
        self.items = {name: np.asarray(v) for name, v in items.items()}

    @property
    def top_k(self):
        return self.top_k_rows.shape[1]

    @property
    def num_candidates(self):
        return len(next(iter(self.items.values())))

    @classmethod
    def from_teacher(cls, teacher, student, candidates, users, top_k,
                     seen=None):
        """Ranks the catalogue with the teacher for every user.

        Args:
            teacher: `TwoTowerModel`. Scores the catalogue.
            student: `TwoTowerModel`. Its item tower's inputs are kept.
            candidates: DataFrame or dict of arrays, one row per item,
                with `item_id` and both item towers' inputs.
            users: DataFrame or dict of arrays with `user_id` and the
                teacher's user-tower inputs.
            top_k: int. Items kept per user; at most the catalogue size.
            seen: DataFrame, dict of arrays or None. `(user_id, item_id)`
                pairs never put in a list.

        Returns:
            A `RankingTargets`.

        Raises:
            ValueError: if `candidates` or `users` is missing, lacks a
                column, or `top_k` exceeds the catalogue.
        """
        if candidates is None or users is None:
            raise ValueError(
                "method='ranking' needs both `candidates` (the catalogue, "
                "e.g. data.items) and `users` (e.g. data.users). Received: "
                f"candidates is None={candidates is None}, "
                f"users is None={users is None}"
            )
        teacher_items = retrieval_inputs.candidate_table(
            candidates, teacher.item_model, ITEM_ID, top_k
        )
        student_items = retrieval_inputs.candidate_table(
            candidates, student.item_model, ITEM_ID, top_k
        )
        user_table = _user_table(users, teacher.user_model)
        scores = _TeacherScores(teacher, user_table, teacher_items)
        seen_rows = _seen_rows(
            seen, user_table[USER_ID], teacher_items[ITEM_ID]
        )
        top_k_rows = np.full(
            (int(user_table[USER_ID].max()) + 1, top_k), -1, np.int32
        )
        for start in range(0, scores.num_users, USER_CHUNK):
            stop = min(start + USER_CHUNK, scores.num_users)
            chunk = scores.chunk(start, stop)
            rows, cols = seen_rows
            inside = (rows >= start) & (rows < stop)
            chunk[rows[inside] - start, cols[inside]] = -np.inf
            top_k_rows[user_table[USER_ID][start:stop]] = _top_k(chunk, top_k)
        names = model_utils.input_names(student.item_model)
        return cls(top_k_rows, {n: student_items[n] for n in names})

    def check_top_k(self, top_k):
        """Refuses a `top_k` other than the one the lists were made for."""
        if top_k != self.top_k:
            raise ValueError(
                f"The teacher's lists hold {self.top_k} items per user; "
                "pass `candidates` and `users` again to rank anew. "
                f"Received: top_k={top_k}"
            )

    def lookup(self, user_ids):
        """Each row's top-K candidate rows and whether it has a list.

        Args:
            user_ids: int tensor `(B,)` or `(B, 1)`.

        Returns:
            `(rows, weights)`: int32 `(B, K)` candidate rows (0 where the
            user has no list) and float32 `(B,)` weights, 1 for a user
            with a list and 0 otherwise (unknown or out-of-range ids).
        """
        ids = ops.reshape(ops.cast(user_ids, "int32"), (-1,))
        table = ops.convert_to_tensor(self.top_k_rows)
        in_range = ops.logical_and(ids >= 0, ids < self.top_k_rows.shape[0])
        rows = ops.take(table, ops.where(in_range, ids, 0), axis=0)
        has_list = ops.logical_and(in_range, rows[:, 0] >= 0)
        return ops.maximum(rows, 0), ops.cast(has_list, "float32")

    def item_features(self, rows):
        """The student item tower's inputs for candidate `rows` `(n,)`."""
        return {
            name: ops.take(ops.convert_to_tensor(values), rows, axis=0)
            for name, values in self.items.items()
        }

    def cosines(self, item_tower, users, ranked_rows, negative_rows,
                training=False):
        """The student's scores of ranked and of sampled candidates.

        Args:
            item_tower: `keras.Model`. The student's item tower.
            users: `(B, d)` student user embeddings.
            ranked_rows: int `(B, K)` candidate rows, from `lookup`.
            negative_rows: int `(N,)` candidate rows shared by the batch.
            training: bool. Passed to the tower. Defaults to `False`.

        Returns:
            `(ranked, negatives)`: `(B, K)` and `(B, N)` dot products.
        """
        batch, k = ops.shape(ranked_rows)[0], ops.shape(ranked_rows)[1]
        ranked_items = item_tower(
            self.item_features(ops.reshape(ranked_rows, (-1,))),
            training=training,
        )
        ranked_items = ops.reshape(ranked_items, (batch, k, -1))
        negative_items = item_tower(
            self.item_features(negative_rows), training=training
        )
        return (
            ops.einsum("bd,bkd->bk", users, ranked_items),
            ops.matmul(users, ops.transpose(negative_items)),
        )

    def save(self, store):
        """Writes the tables into a Keras weights store."""
        store[TOP_K_KEY] = self.top_k_rows
        for name, values in self.items.items():
            store[ITEM_KEY_PREFIX + name] = values

    @classmethod
    def load(cls, store):
        """Reads what `save` wrote, or returns None if it wrote nothing."""
        keys = list(store.keys())
        if TOP_K_KEY not in keys:
            return None
        items = {
            key[len(ITEM_KEY_PREFIX):]: np.asarray(store[key])
            for key in keys if key.startswith(ITEM_KEY_PREFIX)
        }
        return cls(np.asarray(store[TOP_K_KEY]), items)

    @staticmethod
    def split_store(store):
        """The store's entries that are Keras variables, not tables."""
        return {
            key: store[key] for key in store.keys()
            if not key.startswith(STORE_PREFIX)
        }


def resolve_targets(current, teacher, student, top_k, candidates, users,
                    seen, required=True):
    """The lists `compile` asked for: new ones, or the current ones.

    Args:
        current: `RankingTargets` or None. The lists held so far.
        teacher, student: `TwoTowerModel`s, as in `from_teacher`.
        top_k, candidates, users, seen: as in `from_teacher`.
        required: bool. Raise when there are no lists at all; False
            while `load_model` restores them. Defaults to `True`.

    Returns:
        New `RankingTargets` if `candidates` or `users` is given, else
        `current` (checked against `top_k`), else None.

    Raises:
        ValueError: if no lists exist and `required`, or on the errors of
            `from_teacher`.
    """
    if candidates is not None or users is not None:
        return RankingTargets.from_teacher(
            teacher, student, candidates, users, top_k, seen
        )
    if current is not None:
        current.check_top_k(top_k)
        return current
    if required:
        raise ValueError(
            "method='ranking' ranks the catalogue with the teacher before "
            "training: pass `candidates` (e.g. data.items) and `users` "
            "(e.g. data.users), and `seen` (the training pairs). "
            "Received: candidates=None, users=None"
        )
    return None


class _TeacherScores:
    """The frozen teacher's cosines of users against the catalogue."""

    def __init__(self, teacher, user_table, items):
        self.users = _predict(teacher.user_model, user_table)
        self.items = _predict(teacher.item_model, items)
        self.num_users = len(self.users)

    def chunk(self, start, stop):
        return self.users[start:stop] @ self.items.T


def _predict(tower, table):
    inputs = model_utils.select_inputs(tower, table, tower.name)
    return np.asarray(
        tower.predict(inputs, batch_size=USER_CHUNK, verbose=0), np.float64
    )


def _user_table(users, user_model):
    table = retrieval_inputs.tower_features(
        users, user_model, "users", extra=[USER_ID]
    )
    if USER_ID not in table:
        raise ValueError(
            f"Expected `users` to have the column '{USER_ID}': the lists "
            f"are looked up by it. Received: columns={sorted(table)}"
        )
    ids = table[USER_ID]
    if (ids < 0).any() or len(np.unique(ids)) != len(ids):
        raise ValueError(
            "Expected one row per user in `users`, with ids >= 0. "
            f"Received: {len(ids)} rows, {len(np.unique(ids))} distinct ids"
        )
    return table


def _seen_rows(seen, user_ids, item_ids):
    """`(user row, candidate row)` of each seen pair both tables hold."""
    if seen is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    columns = list(seen.columns) if hasattr(seen, "columns") else list(seen)
    missing = [key for key in (USER_ID, ITEM_ID) if key not in columns]
    if missing:
        raise ValueError(
            f"Expected `seen` to have the columns '{USER_ID}' and "
            f"'{ITEM_ID}'. Received: missing={missing}"
        )
    pairs = {key: np.asarray(seen[key]).astype(np.int64).reshape(-1)
             for key in (USER_ID, ITEM_ID)}
    user_row = _position_lookup(user_ids)
    item_row = _position_lookup(item_ids)
    rows = user_row(pairs[USER_ID])
    cols = item_row(pairs[ITEM_ID])
    kept = (rows >= 0) & (cols >= 0)
    return rows[kept], cols[kept]


def _position_lookup(ids):
    ids = np.asarray(ids, np.int64)
    table = np.full(int(ids.max()) + 1, -1, np.int64)
    table[ids] = np.arange(len(ids))

    def lookup(values):
        inside = (values >= 0) & (values < len(table))
        return np.where(inside, table[np.where(inside, values, 0)], -1)

    return lookup


def _top_k(scores, k):
    """Column indices of the `k` best scores per row, best first."""
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, best, 1), axis=1,
                       kind="stable")
    return np.take_along_axis(best, order, 1).astype(np.int32)
