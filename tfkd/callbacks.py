"""Keras callbacks for distillation: NaN guard, temperature and alpha
schedules."""

import math

import keras

from tfkd.api_export import tfkd_export


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

    attribute = None

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
