"""A feature spec on disk: one JSON file, large vocabularies beside it.

A vocabulary of more than `INLINE_VALUES` values is written to its own
file in a folder next to the spec (`spec.json` -> `spec.vocabularies/
user.jsonl`, one JSON value per line, id 1 first), and the spec's entry
names it with `"vocabulary_file"` (relative to the spec) instead of
listing the values, so the spec stays a file a person can read and edit.
"""

import json
import os

from tfkd._internal import atomic_files
from tfkd.datasets.feature_spec import FeatureSpec

# Values a spec lists inline; a longer vocabulary gets its own file.
INLINE_VALUES = 10_000
VOCABULARY_FILE_KEY = "vocabulary_file"


def save_spec(spec, path, inline_values=None):
    """Writes `spec` as JSON at `path`, large vocabularies beside it.

    Every file is written atomically; the vocabulary files first, so the
    spec never names one that is not there.

    Args:
        spec: `FeatureSpec`.
        path: str or path-like. The spec's JSON file.
        inline_values: int or None. Longer vocabularies get their own
            file. Defaults to `INLINE_VALUES` (10,000).

    Returns:
        The list of files written, the spec last.

    Example:

    ```python
    save_spec(data.spec, "spec.json")
    spec = load_spec("spec.json")
    ```
    """
    path = os.fspath(path)
    if inline_values is None:
        inline_values = INLINE_VALUES
    config = spec.to_dict()
    folder = _vocabulary_folder(path)
    written = []
    for entry in config["features"]:
        vocabulary = entry.get("vocabulary")
        if vocabulary is None or len(vocabulary) <= inline_values:
            continue
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, f"{entry['name']}.jsonl")
        atomic_files.write_text(
            target, "".join(json.dumps(v) + "\n" for v in vocabulary)
        )
        written.append(target)
        del entry["vocabulary"]
        entry[VOCABULARY_FILE_KEY] = os.path.relpath(
            target, os.path.dirname(os.path.abspath(path)))
    atomic_files.write_json(path, config)
    return written + [path]


def load_spec(path):
    """Reads a spec written by `save_spec` (or by hand).

    Args:
        path: str or path-like. The spec's JSON file.

    Returns:
        `FeatureSpec`.

    Raises:
        OSError: if the spec or a vocabulary file it names is missing.
        ValueError: if the JSON is not a spec (`FeatureSpec.from_dict`) or
            a vocabulary file holds a line that is not JSON.
    """
    path = os.fspath(path)
    with open(path) as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds {type(config).__name__}, not a spec")
    base = os.path.dirname(os.path.abspath(path))
    features = []
    for entry in config.get("features", []):
        entry = dict(entry)
        name = entry.pop(VOCABULARY_FILE_KEY, None)
        if name is not None:
            entry["vocabulary"] = _read_values(os.path.join(base, name))
        features.append(entry)
    return FeatureSpec.from_dict(dict(config, features=features))


def _read_values(path):
    values = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                values.append(json.loads(line))
            except ValueError as e:
                raise ValueError(
                    f"{path} line {number} is not a JSON value: {e}"
                ) from e
    return values


def _vocabulary_folder(path):
    stem = path[: -len(".json")] if path.endswith(".json") else path
    return stem + ".vocabularies"
