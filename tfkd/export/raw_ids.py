"""An app's raw ids, mapped before each invoke, timed as the app runs.

A feature with a vocabulary (text ids, ids from 0, sparse 64-bit ids) or
hash buckets reaches the file as ids: the app maps each raw value through
the vocabulary the sidecar carries (a hash map per feature: a Python dict
here, a `HashMap` in an app) or hashes it (`tfkd.datasets.id_hashing`),
then invokes. The mapping is not ops in the file, so the file keeps the
int32 id inputs that int8 calibration and the exporter's unknown-id check
feed. (LiteRT's builtin HASHTABLE ops could hold a vocabulary: a
`tf.lookup.StaticHashTable` converts to CALL_ONCE, HASHTABLE and
HASHTABLE_FIND without Flex; not done here.)
"""

import numpy as np

from tfkd.datasets.id_hashing import hashed_id
from tfkd.datasets.vocabulary import key_for
from tfkd.export.litert_runner import median_us


def raw_mappings(feature_spec):
    """`{name: (id_of, value_of)}` of the spec's features that map raw
    values: `id_of(raw value) -> id`, and `value_of(id)`, a raw value with
    that id (None, a missing cell, for id 0).

    Args:
        feature_spec: dict or None. A `FeatureSpec.to_dict()`.

    Returns:
        dict, empty without a spec or such features.
    """
    mappings = {}
    for feature in (feature_spec or {}).get("features", []):
        vocabulary = feature.get("vocabulary")
        buckets = feature.get("hash_buckets")
        if vocabulary:
            mappings[feature["name"]] = _vocabulary_mapping(vocabulary)
        elif buckets:
            mappings[feature["name"]] = _hash_mapping(buckets)
    return mappings


def _vocabulary_mapping(vocabulary):
    ids = {key: i + 1 for i, key in enumerate(vocabulary)}
    text_keys = isinstance(vocabulary[0], str)

    def id_of(value):
        # A missing cell's key is None, which no vocabulary holds: id 0.
        return ids.get(key_for(value, text_keys), 0)

    def value_of(i):
        return vocabulary[i - 1] if 0 < i <= len(vocabulary) else None

    return id_of, value_of


def _hash_mapping(buckets):
    # A hash has no inverse: any value of about an id's length costs the
    # app the same to hash.
    def value_of(i):
        return None if i == 0 else f"value-{i:08d}"

    return (lambda value: hashed_id(value, buckets)), value_of


def lookup_invoke_us_p50(runner, request, feature_spec, runs):
    """Median microseconds of one request from the app's raw values.

    Each call maps the raw value of every such feature (a value behind
    the request's id) to its id, writes the ids into the input tensors,
    then invokes a fixed-shape interpreter, as an app does.

    Args:
        runner: `LiteRTRunner` on the file.
        request: dict. One request (batch 1) of model ids.
        feature_spec: dict or None. The sidecar's `feature_spec`.
        runs: int. Timed calls.

    Returns:
        float, or None when no input maps raw values.

    Example:

    ```python
    lookup_invoke_us_p50(runner, first, spec.to_dict(), runs=200)
    ```
    """
    mappings = {name: mapping for name, mapping in
                raw_mappings(feature_spec).items()
                if name in runner.input_names}
    if not mappings:
        return None
    raw = {name: [value_of(int(i))
                  for i in np.asarray(request[name]).reshape(-1)]
           for name, (_, value_of) in mappings.items()}

    def fill(arrays):
        for name, (id_of, _) in mappings.items():
            row = arrays[name].reshape(-1)  # a view: batch 1
            for j, value in enumerate(raw[name]):
                row[j] = id_of(value)

    return median_us(runner.fixed_shape(request, fill=fill), runs)
