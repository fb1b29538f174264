"""Keras callbacks for distillation: NaN guard, temperature and alpha
schedules, backup and exact resume."""

import json
import math
import os
import shutil

import keras

from tfkd._internal import atomic_files
from tfkd._internal import compat as _compat
from tfkd._internal.api_export import tfkd_export

STATE_FILE = "backup_state.json"

__all__ = [
    "AlphaScheduler",
    "BackupAndRestore",
    "RaiseOnNaN",
    "STATE_FILE",
    "TemperatureScheduler",
]
# The Distiller's scheduled scalars, kept as exact Python floats: the
# weights file holds only their float32 variables.
_SCALARS = ("alpha", "temperature")


@tfkd_export("tfkd.callbacks.RaiseOnNaN")
class RaiseOnNaN(keras.callbacks.Callback):
    """Stops `fit` with an error at the first batch whose loss is not finite.

    Keras' `TerminateOnNaN` only sets `stop_training`, so a notebook run ends
    quietly with NaN weights. This callback raises instead and names the epoch,
    the batch and the loss parts, so the user sees where training broke.
    `tfkd.Distiller.fit` adds it unless one is already in `callbacks`. On
    the JAX backend the check runs off the training thread, so a few more
    batches may run before the error surfaces; it still names the batch
    that failed.

    Raises:
        FloatingPointError: when `loss`, `student_loss` or
            `distillation_loss` is NaN or infinite after a training batch.

    Example:

    ```python
    distiller.fit(ds, callbacks=[tfkd.callbacks.RaiseOnNaN()])
    ```
    """

    # Reading each batch's loss makes every step wait for the device; as
    # an async-safe callback Keras runs the check on a worker thread (JAX
    # backend) and re-raises its error at a later batch or the epoch's
    # end. On an H100 that took the Distiller from 0.857x to 1.031x Keras'
    # own (docs/BENCHMARKS.md); the TensorFlow backend reads the logs
    # every step regardless.
    async_safe = True

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        parts = {
            key: float(logs[key])
            for key in ("loss", "student_loss", "distillation_loss")
            if key in logs
        }
        bad = [key for key, value in parts.items() if not math.isfinite(value)]
        if bad:
            shown = ", ".join(f"{k}={v}" for k, v in parts.items())
            raise FloatingPointError(
                f"Non-finite {bad[0]} at epoch {self._epoch + 1}, batch "
                f"{batch + 1} ({shown}). Training stopped. Check the inputs "
                "and labels for NaN/inf, lower the learning rate, or check "
                "that the teacher's outputs are finite on this data."
            )


def with_nan_guard(callbacks):
    """`callbacks` as a list that holds a `RaiseOnNaN`, added if missing.

    Args:
        callbacks: None or a list of `keras.callbacks.Callback`.

    Returns:
        A new list.

    Example:

    ```python
    model.fit(ds, callbacks=with_nan_guard([keras.callbacks.History()]))
    ```
    """
    callbacks = list(callbacks or [])
    if not any(isinstance(c, RaiseOnNaN) for c in callbacks):
        callbacks.append(RaiseOnNaN())
    return callbacks


class _ScalarScheduler(keras.callbacks.Callback):
    """Sets one Distiller scalar at the start of every epoch."""

    attribute: str | None = None

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                "`schedule` must be a callable `(epoch, current) -> value`. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        current = getattr(self.model, self.attribute)
        value = float(self.schedule(epoch, current))
        # The Distiller's setter validates the value and names the attribute.
        setattr(self.model, self.attribute, value)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: {self.attribute} = {value:.4g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.attribute] = getattr(self.model, self.attribute)


@tfkd_export("tfkd.callbacks.TemperatureScheduler")
class TemperatureScheduler(_ScalarScheduler):
    """Changes the Distiller's temperature at the start of each epoch.

    Args:
        schedule: callable. `schedule(epoch, current_temperature)` returns the
            temperature for `epoch` (0-indexed). It must be > 0.
        verbose: int. `1` prints the value each epoch. Defaults to `0`.

    Example:

    ```python
    # Anneal from T=4 towards T=1.
    cb = tfkd.callbacks.TemperatureScheduler(lambda e, t: max(1.0, 4.0 - e))
    distiller.fit(ds, epochs=5, callbacks=[cb])
    ```
    """

    attribute = "temperature"


@tfkd_export("tfkd.callbacks.AlphaScheduler")
class AlphaScheduler(_ScalarScheduler):
    """Changes the Distiller's `alpha` (hard-label weight) each epoch.

    Args:
        schedule: callable. `schedule(epoch, current_alpha)` returns the alpha
            for `epoch` (0-indexed), in [0, 1].
        verbose: int. `1` prints the value each epoch. Defaults to `0`.

    Example:

    ```python
    # Lean on the teacher early, on the labels late.
    cb = tfkd.callbacks.AlphaScheduler(lambda e, a: min(1.0, 0.1 * (e + 1)))
    distiller.fit(ds, epochs=5, callbacks=[cb])
    ```
    """

    attribute = "alpha"


@tfkd_export("tfkd.callbacks.BackupAndRestore")
class BackupAndRestore(keras.callbacks.Callback):
    """Backs training up as it goes, so that a rerun resumes where it was.

    Like `keras.callbacks.BackupAndRestore`, it writes the weights, the
    optimizer state (its iteration count included) and the Distiller's
    `alpha` and `temperature` to `backup_dir` every epoch or every
    `save_freq` batches; the next `fit` given the same directory restores
    them and starts from there, and the backup is deleted when `fit` ends.
    Unlike Keras 3.15's callback:

    - a backup taken mid-epoch resumes at the next batch, where Keras starts
      the epoch over and trains its first batches twice;
    - each backup is written in full before it replaces the previous one,
      so a process killed while saving never resumes from weights and an
      epoch that disagree;
    - values set by `TemperatureScheduler` and `AlphaScheduler` come back
      exactly, and a schedule of the current value is not applied twice;
    - a later `fit` on the same model starts at its own `initial_epoch`.

    A run killed and rerun thus ends with the weights of an unbroken run,
    provided the data come in the same order in every process: pass
    `shuffle=False`, or a dataset whose order does not depend on how often
    it was iterated before. To resume mid-epoch, the batches the backup
    had trained are read and skipped, not trained on; the resumed epoch's
    logged metrics cover the batches trained after the restart.

    Backing up every `save_freq` batches needs the TensorFlow backend (JAX
    and torch: use `"epoch"`). The model must be built when `fit` starts:
    call it on one batch first. Under a multi-worker strategy, give each
    worker its own `backup_dir`.

    Args:
        backup_dir: str or path. A directory for this callback alone.
        save_freq: `"epoch"` or int >= 1. Back up at the end of every
            epoch, or every `save_freq` batches. Defaults to `"epoch"`.
        delete_checkpoint: bool. Delete `backup_dir` when `fit` completes.
            Defaults to `True`.

    Raises:
        TypeError: if `backup_dir` is not a string or path.
        ValueError: on an empty `backup_dir`, a `save_freq` that is not
            `"epoch"` or a positive int, `save_freq` in batches on another
            backend than TensorFlow, an unbuilt model when `fit` starts, or
            an unreadable backup.

    Example:

    ```python
    distiller(x_first_batch)  # build it, so the backup can be loaded
    backup = tfkd.callbacks.BackupAndRestore("/tmp/backup", save_freq=100)
    distiller.fit(x, y, epochs=5, shuffle=False, callbacks=[backup])
    # Killed? Run the same script again: it goes on from the last backup.
    ```
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        self.backup_dir = _check_backup_dir(backup_dir)
        self.save_freq = _check_save_freq(save_freq)
        self.delete_checkpoint = delete_checkpoint
        self._epoch = 0
        self._last_batch = -1
        self._since_save = 0
        self._pending = None
        self._moved_start = False

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(
                "`BackupAndRestore` restores weights when `fit` starts, so "
                "the model must be built by then: call it on one batch of "
                "inputs before `fit`. Received: model.built=False"
            )
        self._since_save, self._pending = 0, None
        state = _read_state(self.backup_dir)
        if state is None:
            return
        self._restore(state)
        _compat.set_initial_epoch(self.model, state["epoch"])
        self._moved_start = True
        if state["batches_done"]:
            self._pending = state

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._last_batch = epoch, -1
        if self._moved_start:
            # `fit` has read it: a later `fit`, even after an interruption,
            # starts at its own `initial_epoch`.
            _compat.set_initial_epoch(self.model, None)
            self._moved_start = False
        if self._pending is not None:
            _compat.skip_batches(self.model, self._pending["batches_done"])

    def on_train_batch_end(self, batch, logs=None):
        added, self._last_batch = batch - self._last_batch, batch
        if self._pending is not None:
            if batch + 1 >= self._pending["batches_done"]:
                # The backup's state again: this also undoes what the
                # schedules set in this epoch's `on_epoch_begin`, which
                # had run before the backup was taken.
                self._restore(self._pending)
                self._pending = None
            return
        if self.save_freq == "epoch":
            return
        self._since_save += added
        if self._since_save >= self.save_freq:
            self._since_save = 0
            self._save(self._epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0)

    def on_train_end(self, logs=None):
        _compat.stop_skipping(self.model)
        self._pending = None
        if self._moved_start:
            _compat.set_initial_epoch(self.model, None)
            self._moved_start = False
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    def _restore(self, state):
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(
            os.path.join(self.backup_dir, state["weights"])
        )
        for name, value in state["scalars"].items():
            setattr(self.model, name, value)

    def _save(self, epoch, batches_done):
        steps = self.params.get("steps")
        if steps and batches_done >= steps:
            epoch, batches_done = epoch + 1, 0
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{epoch}-batch-{batches_done}.weights.h5"
        self.model.save_weights(
            os.path.join(self.backup_dir, name), overwrite=True
        )
        scalars = {
            key: getattr(self.model, key)
            for key in _SCALARS
            if isinstance(getattr(self.model, key, None), float)
        }
        _write_state(self.backup_dir, {
            "epoch": epoch, "batches_done": batches_done, "weights": name,
            "scalars": scalars,
        })


def _check_backup_dir(backup_dir):
    if not isinstance(backup_dir, (str, os.PathLike)):
        raise TypeError(
            "`backup_dir` must be a str or path. "
            f"Received: backup_dir={backup_dir!r}"
        )
    backup_dir = os.fspath(backup_dir)
    if not backup_dir:
        raise ValueError(
            "`backup_dir` must name a directory. Received: backup_dir=''"
        )
    return backup_dir


def _check_save_freq(save_freq):
    if save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, int) or (
        save_freq < 1
    ):
        raise ValueError(
            '`save_freq` must be "epoch" or a number of batches >= 1. '
            f"Received: save_freq={save_freq!r}"
        )
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "`save_freq` in batches needs the TensorFlow backend: resuming "
            "mid-epoch skips the batches already trained, which Keras' "
            f'{keras.backend.backend()} loop does not allow. Pass '
            f'`save_freq="epoch"`. Received: save_freq={save_freq}'
        )
    return save_freq


def _read_state(backup_dir):
    path = os.path.join(backup_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as file:
            state = json.load(file)
        problem = f"{state['weights']} is missing"
        if os.path.exists(os.path.join(backup_dir, state["weights"])):
            return state
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"{STATE_FILE} is unreadable ({error!r})"
    raise ValueError(
        f"Cannot resume from the backup in {backup_dir}: {problem}. Delete "
        f"the directory to start over. Received: backup_dir={backup_dir!r}"
    )


def _write_state(backup_dir, state):
    # The state file is replaced in one step, after the weights it names
    # are complete; older weights files are removed only then.
    atomic_files.write_json(
        os.path.join(backup_dir, STATE_FILE), state, indent=None
    )
    for name in os.listdir(backup_dir):
        if name.endswith(".weights.h5") and name != state["weights"]:
            os.remove(os.path.join(backup_dir, name))
