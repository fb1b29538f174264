"""Every file tfkd writes appears whole or not at all.

A temporary beside the destination (so `os.replace` is a rename on one
filesystem), flushed to disk, then renamed over the destination: a crash
or a refusal leaves the previous file as it was. Temporaries carry the
host and pid of their writer (`tfkd._internal.temp_files`), so the next write to
the same path removes those of dead processes. The verify-then-rename
write of `.tflite` models and their sidecars (`export/atomic_write.py`)
builds on the same temporaries, under a lock.
"""

import contextlib
import json
import os

from tfkd._internal import temp_files


def write_file(path, write, suffix=""):
    """Writes a file through `write(temp_path)`, then moves it into place.

    Args:
        path: str or os.PathLike. The destination; its folder must exist.
        write: callable. `write(temp_path)` writes the whole file there.
        suffix: str. Extension the writer needs on its path (`".keras"`
            for `keras.Model.save`). Defaults to `""`.

    Returns:
        The destination as a str.

    Example:

    ```python
    write_file("student.keras", student.save, suffix=".keras")
    ```
    """
    path = os.fspath(path)
    temp_files.remove_dead_temp_files(path)
    fd, temp_path = temp_files.create_temp_beside(path, suffix)
    os.close(fd)
    try:
        write(temp_path)
        with open(temp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_path)
        raise
    return path


def write_text(path, text):
    """Writes `text` (UTF-8) atomically; see `write_file`.

    Args:
        path: str or os.PathLike. The destination.
        text: str. The whole content.

    Returns:
        The destination as a str.
    """

    def write(temp_path):
        with open(temp_path, "w", encoding="utf-8") as f:
            f.write(text)

    return write_file(path, write)


def write_json(path, value, indent=2):
    """Writes `value` as JSON (NumPy scalars as floats) atomically.

    Args:
        path: str or os.PathLike. The destination.
        value: a JSON-serializable value.
        indent: int or None. Defaults to `2`.

    Returns:
        The destination as a str.

    Example:

    ```python
    write_json("results.json", {"auc": 0.86})
    ```
    """
    return write_text(path, json.dumps(value, indent=indent, default=float)
                      + "\n")
