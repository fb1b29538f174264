"""Helpers shared by the benchmarks: JSON output and versions.

Nothing here imports TensorFlow or Keras, so the JAX speed bench can use
it on a machine without them.
"""

import importlib.metadata
import json

from tfkd import atomic_files


def write_json(report, path):
    """Writes `report` to `path` (atomically) or prints it for `"-"`.

    Args:
        report: dict. JSON-serializable, numbers as Python or NumPy scalars.
        path: str or None. Destination file; `None` or `"-"` prints.

    Example:

    ```python
    write_json({"a": 1.0}, "report.json")
    ```
    """
    text = json.dumps(report, indent=2, default=float)
    if path in (None, "-"):
        print(text)
        return
    atomic_files.write_text(path, text + "\n")


def package_versions(names):
    """Installed version of each distribution, `None` where absent.

    Read from the package metadata, so nothing is imported: the JAX bench
    asks for `tensorflow` on machines that do not have it.

    Args:
        names: iterable of str. Distribution names, e.g. `"keras"`.

    Returns:
        dict of name to version string or `None`.

    Example:

    ```python
    package_versions(["keras", "jax"])  # {"keras": "3.15.1", "jax": None}
    ```
    """
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
