"""The tables `to_tflite_retrieval` reads: candidates and check users."""

import keras
import numpy as np

from tfkd._internal import model_utils
from tfkd.models import embedding_utils


def tower_features(table, tower, argument, extra=()):
    """The columns of `table` that `tower` declares, in its input dtypes.

    Columns the tower does not take (titles, timestamps) are left out, so
    they need not be numeric. Extra columns (the item id) become int32.

    Args:
        table: pandas DataFrame or dict of arrays.
        tower: `keras.Model`. Its declared input names pick the columns.
        argument: str. The argument's name, for messages.
        extra: sequence of str. Other columns to keep (the item id).

    Returns:
        dict of column name to NumPy array.

    Raises:
        TypeError: If `table` is neither a DataFrame nor a dict.
        ValueError: If a column the tower declares is missing.
    """
    if hasattr(table, "columns"):
        columns = {name: table[name] for name in table.columns}
    elif isinstance(table, dict):
        columns = dict(table)
    else:
        raise TypeError(
            f"Expected `{argument}` to be a pandas DataFrame or a dict of "
            f"arrays. Received: {argument} of type {type(table).__name__}"
        )
    names = model_utils.input_names(tower)
    missing = sorted(set(names) - set(columns))
    if missing:
        raise ValueError(
            f"Expected `{argument}` to hold the {tower.name} inputs "
            f"{sorted(names)}. Received: missing={missing}"
        )
    dtypes = {
        name: tensor.dtype
        for name, tensor in zip(names, declared_tensors(tower), strict=True)
    }
    features = {}
    for name in dict.fromkeys([*names, *extra]):
        if name not in columns:
            continue
        values = np.asarray(columns[name])
        if values.dtype == object:
            # A list feature's cells (genres) are arrays in a frame.
            values = np.stack(values)
        features[name] = values.astype(dtypes.get(name, "int32"))
    return features


def candidate_table(candidates, item_model, item_id_feature, k):
    """The candidates' item-tower columns and ids, one row per item.

    Args:
        candidates: pandas DataFrame or dict of arrays.
        item_model: `keras.Model`. The item tower.
        item_id_feature: str. The id column.
        k: int. Items per top-K; at most the number of distinct items.

    Returns:
        dict of column name to array.

    Raises:
        ValueError: If the id column is missing, an id has rows with
            different features, or `k` exceeds the distinct items.
    """
    items = tower_features(
        candidates, item_model, "candidates", extra=[item_id_feature]
    )
    if item_id_feature not in items:
        raise ValueError(
            f"Expected `candidates` to have the column {item_id_feature!r} "
            f"(`item_id_feature`). Received: columns={sorted(items)}"
        )
    items = unique_candidates(items, item_id_feature)
    count = items[item_id_feature].shape[0]
    if k > count:
        raise ValueError(
            f"Expected `k` <= the number of candidates ({count} distinct "
            f"item ids). Received: k={k}"
        )
    return items


def unique_candidates(items, item_id_feature):
    """Keeps one row per item id, so a top-K never lists an item twice.

    Rows repeating an id with the same features (a table built by a join)
    are dropped; rows giving one id different features are refused, since
    either could be the item.

    Args:
        items: dict of column name to array, one row per candidate.
        item_id_feature: str. The id column.

    Returns:
        `items` restricted to the first row of each id, in table order.

    Raises:
        ValueError: If an id has rows with different features.
    """
    ids = items[item_id_feature]
    _, first = np.unique(ids, return_index=True)
    if len(first) == len(ids):
        return items
    first = np.sort(first)
    kept = {name: values[first] for name, values in items.items()}
    row_of = {int(item): row for row, item in enumerate(kept[item_id_feature])}
    conflicting = sorted({
        int(item) for row, item in enumerate(ids)
        if any(
            not np.array_equal(values[row], kept[name][row_of[int(item)]])
            for name, values in items.items()
        )
    })
    if conflicting:
        raise ValueError(
            "Expected one row per item id in `candidates`: the ids "
            f"{conflicting[:10]} have rows with different features. Keep "
            "one row per item (e.g. candidates.drop_duplicates("
            f"{item_id_feature!r})). Received: {len(ids)} rows, "
            f"{len(first)} distinct ids"
        )
    return kept


def random_users(user_model, count, vocabulary_sizes=None):
    """Random users with ids inside each input's vocabulary.

    Args:
        user_model: `keras.Model`. The user tower.
        count: int. Users to draw.
        vocabulary_sizes: dict or None. Input name to vocabulary size,
            for inputs that `tfkd.models` layers do not describe (plain
            `keras.layers.Embedding`). Defaults to `None`.

    Returns:
        dict of input name to int32 array with `count` rows.
    """
    rng = np.random.default_rng(0)
    vocabularies = dict(vocabulary_sizes or {})
    vocabularies.update(embedding_utils.vocabulary_sizes(user_model))
    users = {}
    for name, tensor in zip(model_utils.input_names(user_model),
                            declared_tensors(user_model), strict=True):
        shape = (count,) + tuple(tensor.shape[1:])
        if "int" not in str(tensor.dtype):
            users[name] = rng.standard_normal(shape).astype(tensor.dtype)
            continue
        # Without a known vocabulary, id 0 (unknown) is the only valid id.
        vocabulary = vocabularies.get(name, 1)
        if isinstance(vocabulary, list):
            vocabulary = min(vocabulary)
        users[name] = rng.integers(0, vocabulary, shape, np.int32)
    return users


def declared_tensors(model):
    """The model's input tensors, in `model_utils.input_names` order."""
    structure = model_utils.input_structure(model)
    if isinstance(structure, dict):
        return list(structure.values())
    return keras.tree.flatten(structure)
