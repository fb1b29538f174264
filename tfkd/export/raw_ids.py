"""An app's raw ids, looked up before each invoke, timed as the app runs.

A feature with a vocabulary (text ids, ids from 0, sparse 64-bit ids)
reaches the file as ids: the app maps each raw value through the
vocabulary the sidecar carries, then invokes. The lookup is a hash map
per feature (a Python dict here, a `HashMap` in an app), not ops in the
file, so the file keeps the int32 id inputs that int8 calibration and the
exporter's unknown-id check feed. (LiteRT's builtin HASHTABLE ops could
hold it: a `tf.lookup.StaticHashTable` converts to CALL_ONCE, HASHTABLE
and HASHTABLE_FIND without Flex; not done here.)
"""

import numpy as np

from tfkd.datasets.vocabulary import MISSING
from tfkd.datasets.vocabulary import canonical
from tfkd.export.litert_runner import median_us


def vocabulary_tables(feature_spec):
    """`{name: ({key: id}, text_keys)}` of the spec's vocabularies.

    Args:
        feature_spec: dict or None. A `FeatureSpec.to_dict()`.

    Returns:
        dict, empty without a spec or vocabularies.
    """
    tables = {}
    for feature in (feature_spec or {}).get("features", []):
        vocabulary = feature.get("vocabulary")
        if vocabulary:
            tables[feature["name"]] = (
                {key: i + 1 for i, key in enumerate(vocabulary)},
                isinstance(vocabulary[0], str),
            )
    return tables


def lookup_id(value, ids, text_keys):
    """One raw value's id: `ids[canonical key]`, or 0 (unknown)."""
    key = canonical(value)
    if key is MISSING:
        return 0
    return ids.get(str(key) if text_keys else key, 0)


def lookup_invoke_us_p50(runner, request, feature_spec, runs):
    """Median microseconds of one request from the app's raw values.

    Each call looks the raw value of every vocabulary feature up (the
    value behind the request's id), writes the ids into the input
    tensors, then invokes a fixed-shape interpreter, as an app does.

    Args:
        runner: `LiteRTRunner` on the file.
        request: dict. One request (batch 1) of model ids.
        feature_spec: dict or None. The sidecar's `feature_spec`.
        runs: int. Timed calls.

    Returns:
        float, or None when no input has a vocabulary.

    Example:

    ```python
    lookup_invoke_us_p50(runner, first, spec.to_dict(), runs=200)
    ```
    """
    tables = {name: table for name, table in
              vocabulary_tables(feature_spec).items()
              if name in runner.input_names}
    if not tables:
        return None
    raw = {}
    for name, (ids, _) in tables.items():
        by_id = {i: key for key, i in ids.items()}
        # The raw value behind each id; a list's padding is None (id 0).
        raw[name] = [by_id.get(int(i)) for i in
                     np.asarray(request[name]).reshape(-1)]

    def fill(arrays):
        for name, (ids, text_keys) in tables.items():
            row = arrays[name].reshape(-1)  # a view: batch 1
            for j, value in enumerate(raw[name]):
                row[j] = lookup_id(value, ids, text_keys)

    return median_us(runner.fixed_shape(request, fill=fill), runs)
