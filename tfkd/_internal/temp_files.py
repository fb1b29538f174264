"""Temporary files and folders that a later run can clean up safely.

Every file tfkd writes goes through a temporary beside it (exports,
sidecars, checkpoints, reports: `tfkd._internal.atomic_files`). An export killed
half-way (SIGKILL, a dead notebook kernel, a power cut) leaves its
temporary `.tflite` beside the destination and its SavedModel folder in
the system temp directory. Each name carries the host and the
process id of its creator,

```
.<name>.<random>.<host>.<pid>.tmp        beside the destination
tfkd_export_<random>.<host>.<pid>        in tempfile.gettempdir()
```

so a later export removes exactly the leftovers whose creator is gone: same
host, and no live process with that id. A name from another host (a shared
folder) or a live process is never touched; a recycled pid only delays the
cleanup.
"""

import contextlib
import os
import re
import secrets
import shutil
import socket
import tempfile

TEMP_SUFFIX = ".tmp"
# Long enough that two exports of one process never collide (O_EXCL still
# guards it); the characters of `tempfile`'s own random names.
_RANDOM_LENGTH = 8
_RANDOM_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def owner_tag():
    """`<host>.<pid>` of this process, as embedded in temporary names."""
    return f"{socket.gethostname()}.{os.getpid()}"


def owner_is_gone(host, pid):
    """True if `pid` on `host` is certainly not running any more.

    Args:
        host: str. Host name from a temporary name.
        pid: int. Process id from a temporary name.

    Returns:
        bool. False for another host (it cannot be checked from here) and
        for a live process, whoever owns it.
    """
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        # Alive, and owned by another user.
        return False
    return False


def _random_part():
    return "".join(
        secrets.choice(_RANDOM_CHARS) for _ in range(_RANDOM_LENGTH)
    )


def create_temp_beside(final_path, suffix=""):
    """Creates an empty temporary file beside `final_path`.

    The file is opened with `O_CREAT | O_EXCL` and mode 0666, so the
    process umask applies as to any file the user writes (`mkstemp` would
    make it 0600 whatever the umask).

    Args:
        final_path: str. Where the file will be moved.
        suffix: str. Appended after `.tmp`, for writers that insist on
            an extension (Keras' `.keras`). Defaults to `""`.

    Returns:
        `(fd, temp_path)`: an open write descriptor and its path.
    """
    directory, name = os.path.split(final_path)
    while True:
        temp_path = os.path.join(
            directory or ".",
            f".{name}.{_random_part()}.{owner_tag()}{TEMP_SUFFIX}{suffix}",
        )
        try:
            fd = os.open(
                temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666
            )
        except FileExistsError:
            continue
        return fd, temp_path


def _temp_file_pattern(name):
    return re.compile(
        rf"^\.{re.escape(name)}\.[{_RANDOM_CHARS}]{{{_RANDOM_LENGTH}}}"
        rf"\.(?P<host>.+)\.(?P<pid>\d+){re.escape(TEMP_SUFFIX)}"
        r"(?:\.[A-Za-z0-9]+)?$"
    )


def remove_dead_temp_files(final_path):
    """Removes temporaries beside `final_path` left by dead exports.

    Args:
        final_path: str. A destination (`.tflite` or its `.json`).

    Returns:
        list of str. The paths removed.
    """
    directory, name = os.path.split(final_path)
    directory = directory or "."
    pattern = _temp_file_pattern(name)
    removed = []
    for entry in os.listdir(directory):
        match = pattern.match(entry)
        if match and owner_is_gone(match["host"], int(match["pid"])):
            path = os.path.join(directory, entry)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def _temp_dir_pattern(prefix):
    return re.compile(
        rf"^{re.escape(prefix)}[{_RANDOM_CHARS}]{{{_RANDOM_LENGTH}}}"
        rf"\.(?P<host>.+)\.(?P<pid>\d+)$"
    )


def remove_dead_temp_dirs(prefix, directory=None):
    """Removes `<prefix>...` folders of dead exports from the temp dir.

    Only folders owned by this user are considered.

    Args:
        prefix: str. E.g. `"tfkd_export_"`.
        directory: str or None. Defaults to `tempfile.gettempdir()`.

    Returns:
        list of str. The folders removed.
    """
    directory = directory or tempfile.gettempdir()
    pattern = _temp_dir_pattern(prefix)
    removed = []
    for entry in os.listdir(directory):
        match = pattern.match(entry)
        path = os.path.join(directory, entry)
        if not match or not os.path.isdir(path) or os.path.islink(path):
            continue
        if os.stat(path).st_uid != os.getuid():
            continue
        if owner_is_gone(match["host"], int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def owned_temp_dir(prefix):
    """A temporary folder named after this process; dead ones go first.

    Args:
        prefix: str. Start of the folder name, e.g. `"tfkd_export_"`.

    Yields:
        str. The folder, removed on exit.

    Example:

    ```python
    with owned_temp_dir("tfkd_export_") as saved_dir:
        model.export(saved_dir, format="tf_saved_model")
    ```
    """
    remove_dead_temp_dirs(prefix)
    path = tempfile.mkdtemp(prefix=prefix, suffix=f".{owner_tag()}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
