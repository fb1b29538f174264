"""Quality and size metrics, the comparison table and plots.

Metrics are plain numpy (no scikit-learn) so they run wherever tfkd does.
"""

import math
import os

import numpy as np

from tfkd import model_utils
from tfkd.datasets.pipelines import features_from_frame

# Keeps log(p) finite for predicted probabilities of exactly 0 or 1.
LOGLOSS_EPSILON = 1e-7
BYTES_PER_FLOAT32 = 4


def _as_1d(name, values, dtype=np.float64):
    array = np.asarray(values, dtype=dtype)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D or (n, 1). Received shape {array.shape}"
        )
    return array


def _paired(y_true, y_pred):
    y_true = _as_1d("y_true", y_true)
    y_pred = _as_1d("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same length. Received: "
            f"{len(y_true)} and {len(y_pred)}"
        )
    if len(y_true) == 0:
        raise ValueError("Metrics need at least one example. Received: 0")
    return y_true, y_pred


def _check_binary(y_true):
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValueError(
            "`y_true` must hold only 0 and 1. "
            f"Received values: {np.unique(y_true)[:10]}"
        )


def _average_ranks(values):
    """1-based ranks; tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(
        values, return_inverse=True, return_counts=True
    )
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    return mean_rank[inverse]


def auc(y_true, y_score):
    """Area under the ROC curve via the rank (Mann-Whitney U) statistic.

    ```
    AUC = (sum of positives' ranks - P (P + 1) / 2) / (P N)
    ```

    Tied scores get the mean of their ranks, so a tie between a positive
    and a negative counts one half.

    Args:
        y_true: array-like of 0/1, shape `(n,)` or `(n, 1)`.
        y_score: array-like of scores (logits or probabilities), same shape.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: if labels are not 0/1, lengths differ, or one class is
            missing (AUC is undefined).

    Example:

    ```python
    auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # 0.75
    ```
    """
    y_true, y_score = _paired(y_true, y_score)
    _check_binary(y_true)
    positives = int(y_true.sum())
    negatives = len(y_true) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            "AUC needs both classes. Received: "
            f"{positives} positives and {negatives} negatives"
        )
    ranks = _average_ranks(y_score)
    rank_sum = ranks[y_true == 1].sum()
    u = rank_sum - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def logloss(y_true, y_pred, from_logits=False):
    """Mean binary cross-entropy.

    ```
    logloss = -mean(y log p + (1 - y) log(1 - p)),  p = sigmoid(z) if logits
    ```

    Args:
        y_true: array-like of 0/1.
        y_pred: array-like of probabilities, or logits if `from_logits`.
        from_logits: bool. Defaults to `False`.

    Returns:
        float >= 0.

    Raises:
        ValueError: on non-binary labels or mismatched lengths.

    Example:

    ```python
    logloss([1, 0], [0.5, 0.5])  # log(2) = 0.6931
    ```
    """
    y_true, y_pred = _paired(y_true, y_pred)
    _check_binary(y_true)
    if from_logits:
        # Stable form of the cross-entropy of sigmoid(z).
        z = y_pred
        losses = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
        return float(losses.mean())
    p = np.clip(y_pred, LOGLOSS_EPSILON, 1.0 - LOGLOSS_EPSILON)
    losses = -(y_true * np.log(p) + (1.0 - y_true) * np.log(1.0 - p))
    return float(losses.mean())


def rmse(y_true, y_pred):
    """Root mean squared error.

    Args:
        y_true: array-like of targets.
        y_pred: array-like of predictions, same length.

    Returns:
        float >= 0.

    Example:

    ```python
    rmse([1, 2, 3], [1, 2, 5])  # sqrt(4 / 3) = 1.1547
    ```
    """
    y_true, y_pred = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def positive_ranks(positive_scores, negative_scores):
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
    positive = _as_1d("positive_scores", positive_scores)
    negative = np.asarray(negative_scores, dtype=np.float64)
    if negative.ndim != 2 or negative.shape[0] != positive.shape[0]:
        raise ValueError(
            "`negative_scores` must have shape (n, m) with n = "
            f"len(positive_scores) = {len(positive)}. "
            f"Received shape {negative.shape}"
        )
    return 1 + (negative >= positive[:, None]).sum(axis=1)


def _validate_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"`k` must be an int. Received: k={k!r}")
    if k < 1:
        raise ValueError(f"`k` must be >= 1. Received: k={k}")


def hit_rate_at_k(positive_scores, negative_scores, k=10):
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
    _validate_k(k)
    ranks = positive_ranks(positive_scores, negative_scores)
    return float(np.mean(ranks <= k))


def ndcg_at_k(positive_scores, negative_scores, k=10):
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
    _validate_k(k)
    ranks = positive_ranks(positive_scores, negative_scores)
    gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    return float(gains.mean())


def sample_negatives(user_ids, interacted, vocabulary_size,
                     num_negatives=100, seed=0):
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
        pairs = zip(frame["user_id"].to_numpy(), frame["item_id"].to_numpy())
        for user, item in pairs:
            interacted.setdefault(int(user), set()).add(int(item))
    return interacted


def evaluate_retrieval(model, data, split="test", k=10, num_negatives=100,
                       seed=0):
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
            data.spec["item_id"].vocabulary_size,
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
    features = features_from_frame(
        frame, spec, model_utils.input_names(tower)
    )
    inputs = model_utils.select_inputs(tower, features, "tower")
    return np.asarray(tower.predict(inputs, verbose=0))


def count_params(model):
    """Number of scalars in the model's weights (trainable or not).

    Args:
        model: `keras.Model`.

    Returns:
        int.

    Example:

    ```python
    count_params(tfkd.models.student(spec))
    ```
    """
    return int(sum(math.prod(w.shape) for w in model.weights))


def model_bytes(model):
    """Bytes the weights take as float32 (4 bytes per parameter).

    Args:
        model: `keras.Model`.

    Returns:
        int. `count_params(model) * 4`; a quantized export is smaller.

    Example:

    ```python
    model_bytes(model) / 1024  # KiB
    ```
    """
    return count_params(model) * BYTES_PER_FLOAT32


def _predict(model, dataset):
    """Labels and outputs; the model gets the inputs it declares, by name.

    A dataset often carries more columns than a model takes (a student
    reads fewer than its teacher); Keras would match such a dict to the
    inputs by position, so they are selected by name first.
    """
    labels, outputs = [], []
    for features, label in dataset:
        inputs = model_utils.select_inputs(model, features, "model")
        outputs.append(np.asarray(model(inputs, training=False)))
        labels.append(np.asarray(label))
    return np.concatenate(labels), np.concatenate(outputs).reshape(-1)


def _resolve_from_logits(model, from_logits):
    activation = model_utils.probability_activation(model)
    if from_logits is None:
        return activation is None
    if from_logits and activation:
        raise ValueError(
            f"The model's head applies a {activation}: it outputs "
            "probabilities, and from_logits=True would apply the sigmoid "
            "twice. Pass from_logits=False (or None to infer it). "
            "Received: from_logits=True"
        )
    if not from_logits and not activation:
        raise ValueError(
            "The model outputs logits (its head applies no sigmoid or "
            "softmax); from_logits=False would read them as "
            "probabilities. Pass from_logits=True (or None to infer it). "
            "Received: from_logits=False"
        )
    return from_logits


def evaluate_ctr(model, dataset, from_logits=None):
    """AUC and logloss of a binary model on a `(features, label)` dataset.

    Args:
        model: `keras.Model` returning `(batch, 1)` logits, or
            probabilities from a sigmoid head.
        dataset: `tf.data.Dataset` of `(features, 0/1 label)` batches.
            Columns the model does not take are ignored.
        from_logits: bool or None. Whether the model outputs logits. None
            infers it from the head
            (`tfkd.model_utils.probability_activation`): a sigmoid or
            softmax means probabilities. Defaults to `None`.

    Returns:
        dict with `"auc"` and `"logloss"`.

    Raises:
        ValueError: If `from_logits` contradicts the model's head, or the
            data lacks an input the model declares.

    Example:

    ```python
    evaluate_ctr(student, data.test)  # {"auc": 0.79, "logloss": 0.49}
    ```
    """
    from_logits = _resolve_from_logits(model, from_logits)
    labels, outputs = _predict(model, dataset)
    return {
        "auc": auc(labels, outputs),
        "logloss": logloss(labels, outputs, from_logits=from_logits),
    }


def evaluate_rating(model, dataset):
    """RMSE of a rating model on a `(features, rating)` dataset.

    Args:
        model: `keras.Model` returning `(batch, 1)` ratings.
        dataset: `tf.data.Dataset` of `(features, rating)` batches.
            Columns the model does not take are ignored.

    Returns:
        dict with `"rmse"`.

    Example:

    ```python
    evaluate_rating(model, data.test)  # {"rmse": 0.93}
    ```
    """
    labels, outputs = _predict(model, dataset)
    return {"rmse": rmse(labels, outputs)}


def _format(value):
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return "-" if value is None else str(value)


def comparison_table(results):
    """Formats `{model: {metric: value}}` as an aligned text table.

    Columns follow the order metrics first appear; ints get thousands
    separators, floats 4 decimals, a missing value is `-`.

    Args:
        results: dict of dict. Model name to its metrics.

    Returns:
        str, one line per model under a header and a rule.

    Example:

    ```python
    print(comparison_table({
        "teacher": {"auc": 0.8, "params": 285665},
        "student": {"auc": 0.79, "params": 11237},
    }))
    # model    auc     params
    # -------  ------  -------
    # teacher  0.8000  285,665
    # student  0.7900   11,237
    ```
    """
    if not isinstance(results, dict):
        raise TypeError(
            "`results` must be a dict of {name: {metric: value}}. "
            f"Received: {type(results).__name__}"
        )
    columns = []
    for metrics in results.values():
        columns += [m for m in metrics if m not in columns]
    rows = [["model", *columns]]
    for name, metrics in results.items():
        rows.append([str(name), *(_format(metrics.get(c)) for c in columns)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = ["-" * w for w in widths]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join(line(r) for r in [rows[0], rule, *rows[1:]])


def _figure():
    # An Agg canvas on a bare Figure: no pyplot, so the global backend of a
    # notebook is left alone and no display is needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure, path):
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return os.fspath(path)


def plot_learning_curves(histories, path, metric="loss"):
    """Plots train (solid) and validation (dashed) curves per model.

    Args:
        histories: dict of name to `keras.callbacks.History` or its
            `.history` dict.
        path: str or path-like. PNG to write (folders are created).
        metric: str. Key to plot; `"val_" + metric` is added when present.
            Defaults to `"loss"`.

    Returns:
        str. `path`.

    Raises:
        ValueError: if no history holds `metric`; lists the keys found.

    Example:

    ```python
    plot_learning_curves({"student": history}, "artifacts/curves.png")
    ```
    """
    logs = {
        name: getattr(history, "history", history)
        for name, history in histories.items()
    }
    if not any(metric in log for log in logs.values()):
        found = sorted({key for log in logs.values() for key in log})
        raise ValueError(
            f"No history has metric {metric!r}. Available: {found}"
        )
    figure, axes = _figure()
    for name, log in logs.items():
        if metric in log:
            epochs = range(1, len(log[metric]) + 1)
            (line,) = axes.plot(epochs, log[metric], label=f"{name} train")
        if f"val_{metric}" in log:
            values = log[f"val_{metric}"]
            axes.plot(
                range(1, len(values) + 1),
                values,
                linestyle="--",
                color=line.get_color() if metric in log else None,
                label=f"{name} val",
            )
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.legend()
    return _save(figure, path)


def plot_quality_vs_size(results, path, quality="auc", size="bytes"):
    """Scatters each model's quality against its size (log scale).

    Args:
        results: dict of name to metrics, each with `quality` and `size`.
        path: str or path-like. PNG to write (folders are created).
        quality: str. Metric on the y axis. Defaults to `"auc"`.
        size: str. Metric on the x axis. Defaults to `"bytes"`.

    Returns:
        str. `path`.

    Raises:
        ValueError: if a model lacks `quality` or `size`.

    Example:

    ```python
    plot_quality_vs_size(
        {"teacher": {"auc": 0.80, "bytes": 1_142_660},
         "student": {"auc": 0.79, "bytes": 44_948}},
        "artifacts/quality_vs_size.png",
    )
    ```
    """
    for name, metrics in results.items():
        missing = [key for key in (quality, size) if key not in metrics]
        if missing:
            raise ValueError(
                f"Model {name!r} lacks {missing}. "
                f"Received metrics: {sorted(metrics)}"
            )
    figure, axes = _figure()
    for name, metrics in results.items():
        axes.scatter(metrics[size], metrics[quality])
        axes.annotate(
            name,
            (metrics[size], metrics[quality]),
            textcoords="offset points",
            xytext=(5, 5),
        )
    axes.set_xscale("log")
    axes.set_xlabel(size)
    axes.set_ylabel(quality)
    return _save(figure, path)
