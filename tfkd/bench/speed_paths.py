"""The speed bench's data, models and Keras training paths.

Everything here is written on Keras' public API and runs on either
backend; the TensorFlow and JAX modules add their own data feed, the
teacher's forward pass and (JAX) the hand-written reference loop.
"""

import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfkd import losses as tfkd_losses
from tfkd.bench import speed_sizes as speed_bench_sizes

# Share of positive labels in ML-100K CTR train (ratings 4-5 vs 1-2).
MOVIELENS_POSITIVE_RATE = 0.76
MOVIELENS_CTR_TRAIN_ROWS = 58_283
MAX_GENRES = 3


@dataclasses.dataclass
class SpeedSetup:
    """What a backend prepared: data feeds, models and path builders.

    Args:
        settings: `SpeedSettings`.
        spec: `tfkd.datasets.FeatureSpec`.
        rows: int. Examples per epoch.
        teacher: `keras.Model`. Shared by every path; it never trains.
        feed: dict. `fit` keyword arguments for `(x, label)` batches.
        cached_feed: dict. The same with the teacher's logits added to
            `x` as the `"teacher_logits"` feature.
        cached_label_feed: dict. `(x, [label, teacher_logit])` batches.
        paths: dict of name to `make(setup)` returning an epoch runner.
        descriptions: dict of name to what the path measures.
        devices: list of str. Where the backend computes.
        packages: tuple of str. Distributions whose versions are reported.
        extra: dict. Backend-specific state (batches, jitted functions).
    """

    settings: Any
    spec: Any
    rows: int
    teacher: keras.Model
    feed: dict
    cached_feed: dict
    cached_label_feed: dict
    paths: dict[str, Callable]
    descriptions: dict[str, str]
    devices: list
    packages: tuple
    extra: dict = dataclasses.field(default_factory=dict)


def build_setup(settings, make_feed, backend_paths, devices, packages):
    """What both backends share: data, teacher, cached logits, paths.

    Args:
        settings: `SpeedSettings`.
        make_feed: callable `(features, labels, batch_size)` returning
            `fit` keyword arguments.
        backend_paths: dict of the backend's own path builders.
        devices: list of str.
        packages: tuple of str.

    Returns:
        `SpeedSetup`.
    """
    from tfkd import teachers

    features, labels, spec = load_arrays(settings)
    teacher = speed_bench_sizes.build_model(spec, settings.size, "teacher",
                                            settings.seed)
    batch_size = settings.batch_size
    with_logits = teachers.cache_logits(
        teacher, features, batch_size=batch_size
    )
    logits = with_logits[teachers.DEFAULT_LOGITS_KEY]
    return SpeedSetup(
        settings=settings,
        spec=spec,
        rows=len(labels),
        teacher=teacher,
        feed=make_feed(features, labels, batch_size),
        cached_feed=make_feed(with_logits, labels, batch_size),
        cached_label_feed=make_feed(
            features, cached_labels(labels, logits), batch_size
        ),
        paths={**KERAS_PATHS, **backend_paths},
        descriptions=describe(tuple(backend_paths)),
        devices=devices,
        packages=packages,
    )


def load_arrays(settings):
    """The training examples as NumPy: `(features, labels, spec)`.

    `"movielens"` is ML-100K CTR train, repeated `settings.repeat` times;
    `"synthetic"` draws as many rows of the same shape (ids uniform in
    each vocabulary of `settings.size`, 1-3 genres, 76% positive labels).
    `settings.rows` cuts (or repeats) either to that many rows; the
    `"large"` size draws `settings.rows` (default 8.4M) rows outright.
    `labels` is `(rows, 1)` float32.
    """
    if settings.data == "movielens":
        from tfkd import datasets
        from tfkd.datasets.pipelines import features_from_frame

        data = datasets.movielens_100k(task="ctr")
        frame = data.frames["train"]
        features = features_from_frame(frame, data.spec)
        labels = frame[data.spec.label].to_numpy(np.float32)
        spec = data.spec
        base = len(labels)
    else:
        from tfkd.datasets import schema

        size = speed_bench_sizes.preset(settings.size)
        spec = schema.make_spec("ctr", size.vocabulary_sizes)
        # The demo size repeats ML-100K's row count; the large one draws
        # every row, since repeats of a small set would fit in a cache.
        base = settings.rows if size.rows else MOVIELENS_CTR_TRAIN_ROWS
        features, labels = _synthetic(spec, base, settings.seed)
    rows = settings.rows or base * settings.repeat
    index = np.arange(rows) % base
    features = {name: values[index] for name, values in features.items()}
    # Labels shaped like the logits, `(rows, 1)`: Keras on JAX trains
    # about 15% slower on `(rows,)` labels, which would make the student
    # path look slower than the offline one for a reason of its own.
    return features, labels[index].reshape(-1, 1), spec


def _synthetic(spec, rows, seed):
    rng = np.random.default_rng(seed)
    features = {}
    for feature in spec.features:
        shape = (rows, feature.length) if feature.is_list else (rows,)
        ids = rng.integers(1, feature.vocabulary_size, shape, dtype=np.int32)
        if feature.is_list:
            counts = rng.integers(1, MAX_GENRES + 1, (rows, 1))
            ids = np.where(np.arange(feature.length) < counts, ids, 0)
        features[feature.name] = ids.astype(np.int32)
    labels = (rng.random(rows) < MOVIELENS_POSITIVE_RATE).astype(np.float32)
    return features, labels


def new_student(setup):
    """A fresh student, initialised alike for every path."""
    settings = setup.settings
    return speed_bench_sizes.build_model(setup.spec, settings.size,
                                         "student", settings.seed + 1)


class EpochTimer(keras.callbacks.Callback):
    """Seconds of the last epoch, from `on_epoch_begin` to `on_epoch_end`.

    No batch hook, so Keras keeps dispatching batch callbacks
    asynchronously; at `on_epoch_end` Keras has already read the logs, so
    the device work is done.
    """

    seconds = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self._start


def fit_runner(model, feed, callbacks=(), fit=None):
    """An epoch runner: one `fit(epochs=1)`, returning the epoch's seconds.

    Args:
        model: a compiled `keras.Model`.
        feed: dict. `fit` keyword arguments giving the data.
        callbacks: sequence of more callbacks. Defaults to `()`.
        fit: callable or None. Replaces `model.fit`, e.g. `keras.Model.fit`
            bound to `model` to skip an override. Defaults to `None`.

    Returns:
        A zero-argument callable.
    """
    fit = fit or model.fit

    def run():
        timer = EpochTimer()
        fit(**feed, epochs=1, verbose=0, callbacks=[*callbacks, timer])
        return timer.seconds

    return run


class CachedDistillationLoss(keras.losses.Loss):
    """The Distiller's binary loss, with the teacher logit read from `y`.

    `y_true[:, 0]` is the label and `y_true[:, 1]` the teacher's logit:

    ```
    loss = alpha * bce(label, s) + (1 - alpha) * T**2 * KL(t / T, s / T)
    ```

    with `KL` the Bernoulli KL of `tfkd.losses.BinaryKLDivergence`: the
    value `tfkd.Distiller` computes for a binary head.
    """

    def __init__(self, alpha, temperature, name="cached_distillation"):
        super().__init__(name=name)
        self.alpha = alpha
        self.temperature = temperature
        self._kl = tfkd_losses.BinaryKLDivergence()

    def call(self, y_true, y_pred):
        label, teacher_logit = y_true[:, :1], y_true[:, 1:]
        student = keras.losses.binary_crossentropy(
            label, y_pred, from_logits=True
        )
        t = self.temperature
        distill = self._kl.call(teacher_logit / t, y_pred / t) * t**2
        return self.alpha * student + (1.0 - self.alpha) * distill


def cached_labels(labels, teacher_logits):
    """`[label, teacher_logit]` per row: the offline path's `y`."""
    return np.stack(
        [
            np.asarray(labels, np.float32).reshape(-1),
            np.asarray(teacher_logits, np.float32).reshape(-1),
        ],
        axis=1,
    )


def make_student_path(setup):
    student = new_student(setup)
    student.compile(
        optimizer="adam",
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return fit_runner(student, setup.feed)


def make_online_path(setup):
    """`tfkd.Distiller` exactly as a user runs it (its `fit` included)."""
    from tfkd.distillers.distiller import Distiller

    distiller = Distiller(teacher=setup.teacher, student=new_student(setup))
    distiller.compile(
        optimizer="adam",
        alpha=setup.settings.alpha,
        temperature=setup.settings.temperature,
    )
    return fit_runner(distiller, setup.feed)


def make_offline_path(setup):
    """`tfkd.Distiller` with `tfkd.teachers.CachedLogits` as the teacher."""
    from tfkd.distillers.distiller import Distiller
    from tfkd.teachers import CachedLogits

    distiller = Distiller(teacher=CachedLogits(), student=new_student(setup))
    distiller.compile(
        optimizer="adam",
        alpha=setup.settings.alpha,
        temperature=setup.settings.temperature,
    )
    return fit_runner(distiller, setup.cached_feed)


def make_offline_custom_loss_path(setup):
    """The student alone, the Distiller's loss as a custom Keras loss."""
    student = new_student(setup)
    student.compile(
        optimizer="adam",
        loss=CachedDistillationLoss(
            setup.settings.alpha, setup.settings.temperature
        ),
    )
    return fit_runner(student, setup.cached_label_feed)


def make_keras_path(setup):
    """`keras.distillation.Distiller`: teacher call, student step, losses.

    `LogitsDistillation` with `KLDivergence` softmaxes the one-logit head
    (and so transfers nothing, see the README), but the step runs the
    same models on the same batches, which is what is timed.
    """
    distiller = keras.distillation.Distiller(
        teacher=setup.teacher,
        student=new_student(setup),
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=setup.settings.temperature,
            loss=keras.losses.KLDivergence(),
        ),
        student_loss_weight=setup.settings.alpha,
    )
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    run = fit_runner(distiller, setup.feed)

    def run_quietly():
        # Keras warns, rightly, that this softmax is always 1; once is
        # enough, and the README explains it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*softmax over axis")
            return run()

    return run_quietly


KERAS_PATHS = {
    "student": make_student_path,
    "online": make_online_path,
    "offline": make_offline_path,
    "keras": make_keras_path,
    "offline_custom_loss": make_offline_custom_loss_path,
}
DESCRIPTIONS = {
    "student": "student.compile('adam', BCE from logits); fit, no teacher",
    "online": "tfkd.Distiller(teacher, student).compile('adam', alpha, "
    "temperature); fit (its RaiseOnNaN callback included)",
    "offline": "tfkd.Distiller(tfkd.teachers.CachedLogits(), student); fit "
    "on x plus the 'teacher_logits' feature from "
    "tfkd.teachers.cache_logits (computed once, untimed)",
    "offline_custom_loss": "student.compile('adam', the Distiller's binary "
    "loss as a custom Keras loss); fit on (x, [label, cached teacher "
    "logit]): offline distillation without the Distiller",
    "keras": "keras.distillation.Distiller(LogitsDistillation(T, "
    "KLDivergence()), student_loss_weight=alpha).compile('adam', BCE); fit",
    "teacher_forward": "the teacher's forward pass alone, "
    "training=False, compiled",
    "reference": "hand-written jax.jit step: teacher forward, student "
    "value_and_grad with the same loss, Adam via the Keras optimizer's "
    "stateless_apply",
}


def describe(backend_paths):
    """`DESCRIPTIONS` of the Keras paths plus `backend_paths`."""
    names = (*KERAS_PATHS, *backend_paths)
    return {name: DESCRIPTIONS[name] for name in names}
