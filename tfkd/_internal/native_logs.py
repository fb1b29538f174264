"""Keeps TensorFlow's and LiteRT's native log lines off the terminal.

Imports nothing but the standard library, so that it can run before
anything imports TensorFlow (`tfkd/__init__.py` calls
`import_tensorflow_quietly` first).
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

DEBUG_VARIABLE = "TFKD_DEBUG"
RETRACING_WARNING = "triggered tf.function retracing"
# What TensorFlow's and LiteRT's C++ code write to fd 2, past
# TF_CPP_MIN_LOG_LEVEL: absl log lines ("I0000 00:00:1795520493.211179
# 5801 port.cc:153] ..."; before InitializeLog the seconds field holds the
# Unix time), the older TF format ("2025-09-17 14:44:05.157831: I
# external/..."), absl's own notice, the int8 calibrator's settings and
# LiteRT's delegate notice.
NATIVE_LOG_LINE = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|fully_quantize: \d+, inference_type: "
    r"|INFO: Created TensorFlow Lite \w+ delegate for CPU\.)"
)


def debugging():
    """Whether `TFKD_DEBUG` asks for everything (set, and not "0")."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def native_logs_filtered():
    """Drops native log lines written to fd 2 inside the block.

    Native code writes to file descriptor 2 directly, past `sys.stderr`,
    so fd 2 points at a temporary file for the block. On exit, lines in
    the formats of `NATIVE_LOG_LINE` are dropped and anything else (a
    Python warning, an error) is written back to stderr, after the block.
    Keep the block short: what it prints shows only when it ends. With
    `TFKD_DEBUG` set it does nothing.

    Example:

    ```python
    with native_logs_filtered():
        converter.convert()
    ```
    """
    if debugging():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                capture.seek(0)
                _replay(capture.read().decode("utf-8", "replace"))
    finally:
        os.close(saved)


def import_tensorflow_quietly():
    """Imports TensorFlow and lists its devices without the start-up lines.

    TensorFlow 2.21 logs through absl before `absl::InitializeLog()` is
    called, so `TF_CPP_MIN_LOG_LEVEL` does not reach what its shared
    libraries print while loading ("oneDNN custom operations are on",
    "cudart_stub.cc ... Could not find cuda drivers", each printed twice)
    nor the "failed call to cuInit" error of the first device listing
    (checked in a subprocess with TF_CPP_MIN_LOG_LEVEL=2).
    `TF_ENABLE_ONEDNN_OPTS=0` would silence one line by changing numerics;
    this runs the import and the listing in `native_logs_filtered`
    instead. Does nothing when TensorFlow is already imported or
    `TFKD_DEBUG` is set; returns quietly when TensorFlow is not installed.

    Example:

    ```python
    import_tensorflow_quietly()
    import tensorflow as tf  # already loaded, nothing printed
    ```
    """
    if "tensorflow" in sys.modules or debugging():
        return
    with native_logs_filtered():
        try:
            import tensorflow as tf
        except ModuleNotFoundError as error:
            # Keras on another backend: tfkd imports without TensorFlow.
            if (error.name or "").startswith("tensorflow"):
                return
            raise
        tf.config.list_physical_devices()


class _DropRetracingWarnings(logging.Filter):
    def filter(self, record):
        return RETRACING_WARNING not in record.getMessage()


@contextlib.contextmanager
def retracing_warnings_filtered():
    """Drops TensorFlow's "triggered tf.function retracing" warning.

    Keras traces a new train function for every model it fits, and
    TensorFlow counts those traces per line of Keras' code, not per model:
    from the fifth model a process fits (an ensemble's members, a
    benchmark's rows) it warns about "excessive retracing" that is one
    trace per model, as intended. Only that message, only inside the
    block; with `TFKD_DEBUG` set it does nothing.

    Example:

    ```python
    with retracing_warnings_filtered():
        model.fit(data.train)
    ```
    """
    if debugging():
        yield
        return
    logger = logging.getLogger("tensorflow")
    dropped = _DropRetracingWarnings()
    logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)


def _replay(text):
    kept = [
        line for line in text.splitlines(keepends=True)
        if not NATIVE_LOG_LINE.match(line)
    ]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()
