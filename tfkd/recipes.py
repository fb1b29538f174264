"""The training recipe that the demo, the CLI and the benchmarks share.

`Recipe` holds the settings; `train_supervised` and `train_distilled`
apply them (Adam, early stopping on the validation metric that restores
the best weights), so a baseline and a distilled student are trained the
same way.
"""

import dataclasses
import sys
import time

import keras

from tfkd._internal import native_logs as _native_logs
from tfkd._internal.arguments import validate_positive_int
from tfkd.distillers.distiller import Distiller

# Member k of the ensemble of seed s starts from s * MEMBER_SEED_STRIDE + k:
# no two members of seeds 0..999 share a seed.
MEMBER_SEED_STRIDE = 1000


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How tfkd trains a model: the settings `make demo`, `tfkd distill`
    and `tfkd bench` share (the CLI's defaults are these fields').

    Every model, baselines included, gets the same fair training: Adam,
    early stopping on the validation metric with a patience long enough
    to leave the plateau, and the best epoch's weights restored.

    Args:
        epochs: int. Maximum epochs per model; early stopping on validation
            AUC restores the best epoch. Defaults to `60`.
        patience: int. Epochs without a better validation AUC before
            stopping. Defaults to `20`: on MovieLens-100K the students'
            validation AUC sits on a plateau (about 0.847) for several
            epochs before climbing to about 0.857; patience 1 stopped
            every model there, patience 5 still stopped every scratch
            student of `tfkd bench --quality` on it (best epoch 2-3), and
            with patience 10 / 40 epochs two of three distilled students
            were still climbing when stopped (best epochs 38 and 28).
        batch_size: int. Defaults to `256`.
        learning_rate: float. Adam's learning rate. Defaults to `2e-3`.
        alpha: float. Distiller hard-label weight. Defaults to `0.2`.
        temperature: float. Distiller temperature. Defaults to `2.0`.
        seed: int. Seeds the split, the shuffling and the initialisers.
            Defaults to `42`.
        split: str. `"random"` or `"temporal"`. Defaults to `"random"`.
        teachers: int. How many teachers tfkd trains (each from its own
            seed and shuffle) and averages (`tfkd.teachers.Ensemble`) when
            it trains the teacher itself. Defaults to `5`: on MovieLens-100K
            the 5-teacher ensemble beats one teacher by 0.0055 AUC, and
            its students by 0.005 (`tfkd bench --quality`).
        transfer_size: float. Transfer-set rows per labelled row
            (`tfkd.datasets.with_transfer_set`: unobserved user-item pairs
            drawn by popularity, scored by the teacher once) that
            `train_distilled` adds when the data has user and item tables;
            `0` turns it off. Defaults to `5.0`.
        teacher_patience: int or None. The patience of the teachers;
            `None` gives them `patience`. The teachers peak by epoch 3-5
            on MovieLens-100K, so the students' long patience only adds
            epochs past their best. Defaults to `None`.
    """

    epochs: int = 60
    patience: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    alpha: float = 0.2
    temperature: float = 2.0
    seed: int = 42
    split: str = "random"
    teachers: int = 5
    transfer_size: float = 5.0
    teacher_patience: int | None = None

    @classmethod
    def demo(cls):
        """The recipe `make demo` runs in under 3 minutes on 2 CPU cores:
        two teachers that stop 2 epochs past their best, a 1x transfer
        set, and batches of 512 for every model (half the steps of an
        epoch). The students keep the full recipe's patience and stop by
        it, so scratch and distilled are trained alike. `tfkd demo --full`
        and `tfkd bench --quality` run `Recipe()`."""
        return cls(batch_size=512, teachers=2, teacher_patience=2,
                   transfer_size=1.0)

    @classmethod
    def movielens_1m(cls):
        """The recipe for MovieLens-1M's 591K training rows (ctr): batches
        of 2048 (an epoch of the teacher in about 20 s on 2 cores), three
        teachers that stop 2 epochs past their best, students with
        patience 5 of at most 60 epochs (at 30, two of three distilled
        students ran to the cap), and a 1x transfer set."""
        return cls(epochs=60, patience=5, batch_size=2048, teachers=3,
                   teacher_patience=2, transfer_size=1.0)

    @classmethod
    def quick(cls):
        """One epoch per model, two teachers, a 1x transfer set: the same
        recipe at a size that runs in under a minute, for a first look."""
        return cls(epochs=1, teachers=2, transfer_size=1.0)

    def replace(self, **overrides):
        """A copy with the given fields changed; `None` keeps a field.

        Args:
            **overrides: field names to values (e.g. from CLI flags, which
                are None when not given).

        Returns:
            A new `Recipe`.

        Example:

        ```python
        Recipe().replace(alpha=0.5, temperature=None)  # T stays 2.0
        ```
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)


# What each task trains on and how early stopping reads it: (metric name,
# better direction). The metric is compiled under that name, so Keras logs
# it as "val_<name>".
OBJECTIVES = {"ctr": ("auc", "max"), "rating": ("rmse", "min")}


def _objective(data):
    task = data.spec.task
    if task not in OBJECTIVES:
        raise ValueError(
            f"Training needs a ranking task, one of {tuple(OBJECTIVES)}. "
            f"Received: data.spec.task={task!r}"
        )
    return task, *OBJECTIVES[task]


def _metric(task):
    if task == "rating":
        return keras.metrics.RootMeanSquaredError(name="rmse")
    return keras.metrics.AUC(from_logits=True, name="auc")


def _callbacks(config, metric, mode):
    return [
        keras.callbacks.EarlyStopping(
            monitor=f"val_{metric}",
            mode=mode,
            patience=config.patience,
            restore_best_weights=True,
        )
    ]


def train_supervised(model, data, config, verbose=1, label=None):
    """Fits `model` on the hard labels with early stopping on validation.

    A ctr task (`data.spec.task`) trains on binary cross-entropy from
    logits and stops on validation AUC; a rating task on MSE and RMSE.

    Args:
        model: `keras.Model` with one logit (or rating) output.
        data: `MovieLensData`.
        config: `Recipe`.
        verbose: int. 0: silent; 1: one line on stderr when the model is
            trained (`teacher: 12 epochs, val auc 0.8610, 41 s`); 2: also
            Keras' line per epoch. Defaults to `1`.
        label: str or None. Names the model in that line. Defaults to
            `None` (`model.name`).

    Returns:
        `(model, history)`.
    """
    task, metric, mode = _objective(data)
    loss = (keras.losses.MeanSquaredError() if task == "rating" else
            keras.losses.BinaryCrossentropy(from_logits=True))
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=loss,
        metrics=[_metric(task)],
    )
    history = _fit(model, data, config, (metric, mode), verbose,
                   label or model.name)
    return model, history


def train_teachers(build, data, config, verbose=1):
    """Trains `config.teachers` teachers and averages them.

    Member `k` starts from seed `config.seed * MEMBER_SEED_STRIDE + k`
    and, when `data` keeps its frames, trains on a shuffle of its own
    (`data.train` would hand each model the order the previous one left).

    Args:
        build: callable returning a new, untrained teacher `keras.Model`.
        data: `MovieLensData` (or data from `tfkd.datasets.from_files`).
        config: `Recipe`.
        verbose: int. As in `train_supervised`. Defaults to `1`.

    Returns:
        `(teacher, histories)`: the one model when `config.teachers` is 1,
        else a `tfkd.teachers.Ensemble` of them; one history per member.

    Example:

    ```python
    teacher, _ = train_teachers(lambda: tfkd.models.teacher(data.spec),
                                data, Recipe(teachers=3))
    ```
    """
    from tfkd.teachers import Ensemble

    validate_positive_int("teachers", config.teachers)
    teacher_config = config.replace(patience=config.teacher_patience)
    members, histories = [], []
    for k in range(config.teachers):
        member_seed = config.seed * MEMBER_SEED_STRIDE + k
        keras.utils.set_random_seed(member_seed)
        member_data = reshuffled(data, member_seed, config.batch_size)
        model = build()
        label = (model.name if config.teachers == 1 else
                 f"{model.name} {k + 1}/{config.teachers}")
        model, history = train_supervised(model, member_data, teacher_config,
                                          verbose, label)
        members.append(model)
        histories.append(history)
    if len(members) == 1:
        return members[0], histories
    return Ensemble(members), histories


def reshuffled(data, seed, batch_size):
    """`data` with a training set of its own, shuffled by `seed`.

    `data.train` reshuffles on each pass from where its last pass left
    off, so a model trained on it would see an order set by every model
    trained before it. Data without frames (`from_files`) is returned as
    it is.

    Args:
        data: `MovieLensData` or other data with `train`.
        seed: int. Seeds the shuffle.
        batch_size: int >= 1.

    Returns:
        A copy of `data` with a new `train` dataset (or `data` itself).

    Example:

    ```python
    member_data = reshuffled(data, seed=1000, batch_size=256)
    ```
    """
    frames = getattr(data, "frames", None)
    if not frames or "train" not in frames:
        return data
    from tfkd.datasets.pipelines import frame_to_dataset

    train = frame_to_dataset(frames["train"], data.spec, batch_size,
                             shuffle=True, seed=seed)
    return dataclasses.replace(data, train=train)


def train_distilled(teacher, student, data, config, verbose=1,
                    feature_distillation=None):
    """Distils `teacher` into `student` with early stopping on validation.

    Args:
        teacher: trained `keras.Model`.
        student: `keras.Model` with the teacher's output shape.
        data: `MovieLensData`. Its `spec.task` picks the metric as in
            `train_supervised`, and `"rating"` distils as regression.
        config: `Recipe`.
        verbose: int. As in `train_supervised`. Defaults to `1`.
        feature_distillation: `tfkd.FeatureDistillation` or None. A hint
            from a teacher layer to a student layer. The Distiller then
            calls the live teacher on every batch, transfer rows included:
            cached logits have no layers to tap. Defaults to `None`.

    Returns:
        `(student, history)`.
    """
    task, metric, mode = _objective(data)
    cached, data, note = _with_transfer_set(teacher, data, config)
    distiller = Distiller(
        teacher=cached if feature_distillation is None else teacher,
        student=student,
        kind="regression" if task == "rating" else "auto",
        feature_distillation=feature_distillation,
    )
    distiller.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        metrics=[_metric(task)],
        alpha=config.alpha,
        temperature=config.temperature,
    )
    label = (f"{student.name} (distilled, alpha={config.alpha}, "
             f"T={config.temperature}{note})")
    history = _fit(distiller, data, config, (metric, mode), verbose, label)
    return student, history


def _with_transfer_set(teacher, data, config):
    """The teacher, data and progress-line note of a distillation.

    With `config.transfer_size > 0` and user and item tables, the teacher
    scores the labelled rows, `transfer_size` times as many transfer rows
    and the validation rows once, and the Distiller reads those logits
    (`CachedLogits`) instead of calling the teacher every epoch. Data
    without tables (your own files) trains on its labelled rows, and the
    note says so.
    """
    if not config.transfer_size:
        return teacher, data, ""
    from tfkd.datasets import transfer
    from tfkd.datasets.pipelines import frame_to_dataset

    if not transfer.has_tables(data):
        return teacher, data, ", no transfer set: no user and item tables"
    train = transfer.with_transfer_set(
        data, teacher=teacher, size=config.transfer_size, seed=config.seed,
        batch_size=config.batch_size,
    )
    val = frame_to_dataset(data.frames["val"], data.spec, config.batch_size,
                           teacher=teacher)
    from tfkd.teachers import CachedLogits

    note = f", {config.transfer_size:g}x transfer set"
    return (CachedLogits(), dataclasses.replace(data, train=train, val=val),
            note)


def _fit(model, data, config, objective, verbose, label):
    """The one `fit` call of the recipe, then its progress line."""
    metric, mode = objective
    started = time.perf_counter()
    with _native_logs.retracing_warnings_filtered():
        history = model.fit(
            data.train,
            validation_data=data.val,
            epochs=config.epochs,
            callbacks=_callbacks(config, metric, mode),
            verbose=_keras_verbose(verbose),
            shuffle=False,  # data.train is shuffled by tf.data already
        )
    _report(verbose, label, history, metric, mode, started)
    return history


def _keras_verbose(verbose):
    # Keras' verbose=2 prints one line per epoch; 1 redraws a bar per step.
    return 2 if verbose >= 2 else 0


def _report(verbose, label, history, metric, mode, started):
    """Prints one line for a trained model (stderr: stdout holds results)."""
    if not verbose:
        return
    values = history.history.get(f"val_{metric}") or [float("nan")]
    pick = max if mode == "max" else min
    best = values.index(pick(values))
    epochs = f"{len(values)} epoch{'s' * (len(values) != 1)}"
    at = f" (epoch {best + 1})" if best != len(values) - 1 else ""
    print(
        f"{label}: {epochs}, val {metric} {values[best]:.4f}{at}, "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )
