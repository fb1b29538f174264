"""Verify-then-rename writes shared by every LiteRT exporter.

A model reaches its final path only after the checks accept the temporary
file, so a refusal or a crash never leaves a half-written or unverified
file where the previous one was.
"""

import json
import os
import tempfile

from tfkd.export.sidecar import sidecar_path

MODEL_SUFFIX = ".tflite"


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

    Args:
        final_path: str. Where the file will be moved.
        data: bytes. The content.

    Returns:
        The temporary path.
    """
    # Same directory as the destination, so os.replace is a rename on one
    # filesystem and therefore atomic.
    directory, name = os.path.split(final_path)
    fd, temp_path = tempfile.mkstemp(
        dir=directory or ".", prefix=f".{name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.remove(temp_path)
        raise
    return temp_path


def write_verified(path, model_bytes, verify):
    """Writes a model and its sidecar only after `verify` accepts it.

    Args:
        path: str. Final `.tflite` path (validated).
        model_bytes: bytes. The converted model.
        verify: callable. `verify(temp_model_path)` runs the checks (it
            raises to refuse) and returns the sidecar dict.

    Returns:
        `(sidecar_dict, sidecar_path)`.
    """
    side_path = sidecar_path(path)
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
