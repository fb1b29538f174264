"""Verify-then-rename writes shared by every LiteRT exporter.

A model reaches its final path only after the checks accept the temporary
file, so a refusal or a crash never leaves a half-written or unverified
file where the previous one was. Files get the user's umask, exports to one
path take turns under a lock, and temporaries of killed exports are
removed by the next export to the same path.
"""

import contextlib
import json
import os

from tfkd._internal import temp_files
from tfkd.export.sidecar import sidecar_path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

MODEL_SUFFIX = ".tflite"
LOCK_SUFFIX = ".lock"


def validate_model_path(path):
    """Checks `path` ends in `.tflite` and its directory exists.

    Args:
        path: str or os.PathLike. Destination of the model.

    Returns:
        The path as a str.

    Raises:
        TypeError: If `path` is not a str or os.PathLike.
        ValueError: If it does not end in `.tflite` or is a directory.
        FileNotFoundError: If its directory does not exist.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "Expected `path` to be a str or os.PathLike. "
            f"Received: path={path!r} of type {type(path).__name__}"
        )
    path = os.fspath(path)
    if not path.endswith(MODEL_SUFFIX):
        raise ValueError(
            f"Expected `path` to end with '{MODEL_SUFFIX}' (the sidecar goes "
            f"beside it with '.json'). Received: path={path!r}"
        )
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise FileNotFoundError(
            "The directory of `path` does not exist; create it first. "
            f"Received: path={path!r}"
        )
    if os.path.isdir(path):
        raise ValueError(
            "Expected `path` to be a file, not a directory. "
            f"Received: path={path!r}"
        )
    return path


def write_temp(final_path, data):
    """Writes `data` to a fsynced temporary file beside `final_path`.

    The file is created with the process umask applied (0644 under the
    usual 022), like any file the user writes, and named after this
    process so that a later export can remove it if this one is killed.

    Args:
        final_path: str. Where the file will be moved.
        data: bytes. The content.

    Returns:
        The temporary path.
    """
    # Same directory as the destination, so os.replace is a rename on one
    # filesystem and therefore atomic.
    fd, temp_path = temp_files.create_temp_beside(final_path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.remove(temp_path)
        raise
    return temp_path


def lock_path(path):
    """The lock file that serialises exports to `path`: `<path>.lock`."""
    return os.fspath(path) + LOCK_SUFFIX


@contextlib.contextmanager
def export_lock(path):
    """Holds an exclusive `flock` on `<path>.lock` for one export.

    Two processes (or threads) exporting to the same `path` take turns, so
    one's model never ends up beside the other's sidecar. The lock file is
    removed on release; a waiter that then holds the lock on the removed
    file sees it is gone and locks the new one instead. Without `fcntl`
    (Windows) exports to one path are not serialised.

    Args:
        path: str. The model's destination.

    Yields:
        None, with the lock held.

    Example:

    ```python
    with export_lock("export/student.tflite"):
        ...  # write the model and its sidecar
    ```
    """
    if fcntl is None:
        yield
        return
    name = lock_path(path)
    while True:
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(name)
        except FileNotFoundError:
            current = None
        if current is not None and _same_file(os.fstat(fd), current):
            break
        # The holder before us removed this file: lock the new one.
        os.close(fd)
    try:
        yield
    finally:
        os.remove(name)
        os.close(fd)


def _same_file(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def write_verified(path, model_bytes, verify):
    """Writes a model and its sidecar only after `verify` accepts it.

    Runs under `export_lock(path)`, after removing temporaries that a
    killed export to the same path left behind.

    Args:
        path: str. Final `.tflite` path (validated).
        model_bytes: bytes. The converted model.
        verify: callable. `verify(temp_model_path)` runs the checks (it
            raises to refuse) and returns the sidecar dict.

    Returns:
        `(sidecar_dict, sidecar_path)`.
    """
    side_path = sidecar_path(path)
    with export_lock(path):
        temp_files.remove_dead_temp_files(path)
        temp_files.remove_dead_temp_files(side_path)
        temp_paths = []
        try:
            temp_model = write_temp(path, model_bytes)
            temp_paths.append(temp_model)
            sidecar = verify(temp_model)
            text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
            temp_sidecar = write_temp(side_path, text.encode("utf-8"))
            temp_paths.append(temp_sidecar)
            os.replace(temp_model, path)
            os.replace(temp_sidecar, side_path)
        finally:
            for temp_path in temp_paths:
                if os.path.exists(temp_path):
                    os.remove(temp_path)
    return sidecar, side_path
