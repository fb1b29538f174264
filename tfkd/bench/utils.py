"""Helpers shared by the benchmarks: JSON output and versions.

Nothing here imports TensorFlow or Keras, so the JAX speed bench can use
it on a machine without them.
"""

import importlib.metadata
import json
import os
import platform
from collections.abc import Sequence

from tfkd._internal import atomic_files


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


def read_json(path):
    """Reads a report `write_json` wrote.

    Args:
        path: str. The JSON file.

    Returns:
        The decoded report.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if it does not hold JSON (e.g. a run still writing
            to stdout, or a log file passed by mistake).

    Example:

    ```python
    report = read_json("report.json")
    ```
    """
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a JSON report ({e}). Pass the file "
                         "that --json wrote.") from e


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


def machine():
    """What the figures were measured on: platform, processor, CPUs.

    Returns:
        dict with `platform`, `processor`, `cpus` and `python`.

    Example:

    ```python
    machine()["cpus"]  # 2
    ```
    """
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def load_average():
    """The 1, 5 and 15 minute load averages, or None where unavailable.

    Returns:
        list of three floats (2 decimals), or None.

    Example:

    ```python
    load_average()  # [1.52, 1.1, 0.9]
    ```
    """
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def mean(values):
    """Mean of the values that are not None; None if there are none.

    Example:

    ```python
    mean([0.86, None, 0.87])  # 0.865
    ```
    """
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def sample_std(values):
    """Sample standard deviation (ddof 1) of the values that are not None.

    One value (one seed) gives 0.0, not NaN, so a one-seed report stays
    valid JSON.

    Example:

    ```python
    sample_std([0.86, 0.87])  # 0.00707
    ```
    """
    values = [float(v) for v in values if v is not None]
    if len(values) < 2:
        return 0.0
    centre = sum(values) / len(values)
    return (sum((v - centre) ** 2 for v in values) / (len(values) - 1)) ** .5


def validate_seeds(seeds, ensemble_size):
    """Checks a quality bench's seeds and teachers per seed.

    Args:
        seeds: sequence of distinct ints >= 0.
        ensemble_size: int >= 1.

    Returns:
        The seeds as a list.

    Raises:
        TypeError: if `seeds` is not a sequence (e.g. one int).
        ValueError: on an empty, repeated or negative seed list, or an
            `ensemble_size` that is not an int >= 1.

    Example:

    ```python
    validate_seeds((0, 1, 2), ensemble_size=5)  # [0, 1, 2]
    ```
    """
    if isinstance(seeds, int) or not isinstance(seeds, Sequence):
        raise TypeError(
            "`seeds` must be a list of ints, e.g. [0, 1, 2]. "
            f"Received: seeds={seeds!r}"
        )
    seeds = list(seeds)
    if (not seeds or len(set(seeds)) != len(seeds) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0
            for s in seeds)):
        raise ValueError(
            "`seeds` must be a non-empty list of distinct ints >= 0. "
            f"Received: seeds={seeds!r}"
        )
    if (isinstance(ensemble_size, bool) or not isinstance(ensemble_size, int)
            or ensemble_size < 1):
        raise ValueError(
            "`ensemble_size` must be an int >= 1 (teachers per seed). "
            f"Received: ensemble_size={ensemble_size!r}"
        )
    return seeds
