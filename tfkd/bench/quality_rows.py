"""One seed of `tfkd bench --quality`: the teachers and every student row.

`run_seed` trains the teacher ensemble of one model seed and then each
student recipe from that seed; `tfkd.bench.quality` runs it for every
seed and summarises. Each row returns its test and validation AUC,
parameters, epochs and seconds.
"""

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from tfkd import evaluation
from tfkd import models
from tfkd import recipes
from tfkd import teachers
from tfkd._internal import native_logs as _native_logs
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.pipelines import features_from_frame
from tfkd.distillers.feature_distillation import FeatureDistillation
from tfkd.models import presets

# The ensemble recipe the issue measured outside tfkd (alpha .3, T 2): run
# next to the Recipe's own alpha so the default is chosen on validation.
ALT_ALPHA = 0.3
# The FitNets hint of `kd_feature_projection`: the teacher's last hidden
# layer (64 units) to the student's only one (16), which
# `tfkd.models.ranking_model` names `dense_<i>`.
HINT_TEACHER_LAYER = f"dense_{len(presets.TEACHER_CONFIG['hidden']) - 1}"
HINT_STUDENT_LAYER = f"dense_{len(presets.STUDENT_CONFIG['hidden']) - 1}"
# Chosen on the validation split (seed 0, one teacher, no transfer set):
# val AUC 0.8535 without the hint, 0.8536 / 0.8568 / 0.8585 / 0.8574 at
# weights 0.01 / 0.1 / 1 / 3.
HINT_WEIGHT = 1.0


def run_seed(
    data: MovieLensData,
    recipe: recipes.Recipe,
    seed: int,
    ensemble_size: int,
    transfer_size: float,
    verbose: int = 1,
    variants: bool = True,
    student: Callable[[Any], keras.Model] | None = None,
) -> dict[str, dict[str, Any]]:
    """Trains the teachers of one model seed and every student row.

    Args:
        data: `MovieLensData` of a ctr task, with user and item tables.
        recipe: `Recipe`. Training settings shared by every model.
        seed: int. The model seed.
        ensemble_size: int >= 1. Teachers in the ensemble.
        transfer_size: float > 0. Transfer rows per training row.
        verbose: int. 0 silent, else one line per model on stderr.
        variants: bool. False trains only the two main students
            (`student_scratch`, `student_distilled`).
        student: callable or None. `FeatureSpec` -> a student model, for
            every student row. None: `tfkd.models.student`.

    Returns:
        dict of row name to a dict with `auc`, `val_auc`, `params`,
        `epochs`, `best_epoch`, `seconds` and `recipe` (a short
        description).

    Example:

    ```python
    rows = run_seed(data, tfkd.recipes.Recipe(), 0, 5, 5.0)
    rows["student_distilled"]["auc"]
    ```
    """
    log = _Log(seed, verbose)
    members, rows = _teachers(data, recipe, seed, ensemble_size, log)
    ensemble = teachers.Ensemble(members)
    rows["teacher"] = rows.pop("member_0")
    rows["teacher_ensemble"] = _ensemble_row(ensemble, data, rows)
    log("teacher ensemble", rows["teacher_ensemble"])
    for name in [n for n in rows if n.startswith("member_")]:
        del rows[name]
    # The recipe's seed seeds each row's transfer-set draw and shuffle.
    recipe = recipe.replace(seed=seed, transfer_size=transfer_size)
    plans = [plan._replace(student=student)
             for plan in _plans(recipe, ensemble, members[0])
             if variants or plan.name.startswith("student_")]
    # The ensemble scores train and val once; the live and the cached rows
    # read the same arrays, so only the teacher differs between them.
    columns = {}
    if any(plan.source == "logits" for plan in plans):
        with _native_logs.native_logs_filtered():
            columns = {name: teachers.cache_logits(
                ensemble, features_from_frame(data.frames[name], data.spec))
                for name in ("train", "val")}
    for plan in plans:
        train_data = _train_data(data, columns, plan.source, seed,
                                 plan.config)
        rows[plan.name] = _student_row(plan, train_data, data, log)
    return rows


class _Plan(NamedTuple):
    """One student row: how it is trained and on what.

    `source` is None (the labelled rows; `recipes.train_distilled` adds
    the transfer set when `config.transfer_size > 0`) or `"logits"` (the
    labelled rows with the ensemble's cached logits); `hint` a
    `FeatureDistillation` or None; `student` builds the student from the
    `FeatureSpec` (None: `tfkd.models.student`).
    """

    name: str
    description: str
    teacher: Any
    config: recipes.Recipe
    source: str | None
    hint: FeatureDistillation | None = None
    student: Callable[[Any], keras.Model] | None = None


def _plans(recipe, ensemble, single_teacher):
    """The `_Plan` of each student row.

    `student_distilled` is the default recipe, the one `make demo` runs:
    the ensemble with the recipe's transfer set. The variants leave the
    transfer set out, to show what each ingredient adds; they and the
    scratch student get the epoch cap of `same_steps`.
    """
    single = f"alpha {recipe.alpha}, T {recipe.temperature}"
    ens = f"KD from the {len(ensemble.members)}-teacher ensemble"
    cached = teachers.CachedLogits()
    alone = recipe.replace(transfer_size=0, epochs=same_steps(recipe))
    hint = FeatureDistillation(HINT_TEACHER_LAYER, HINT_STUDENT_LAYER,
                               weight=HINT_WEIGHT)
    plans = [
        ("student_scratch", "hard labels only", None, alone, None),
        ("student_distilled", f"{ens} ({single}) + "
         f"{recipe.transfer_size:g}x transfer set (popularity), logits "
         "cached: the default recipe", ensemble, recipe, None),
        ("kd_ensemble", f"{ens} ({single}), live teacher, no transfer set",
         ensemble, alone, "logits"),
        ("kd_single_teacher", f"KD from the single teacher ({single})",
         single_teacher, alone, None),
        ("kd_feature_projection", f"KD from the single teacher ({single})"
         f" + hint: student {HINT_STUDENT_LAYER} projected to teacher "
         f"{HINT_TEACHER_LAYER}, weight {HINT_WEIGHT:g}", single_teacher,
         alone, None, hint),
        ("kd_ensemble_cached_logits", f"{ens} ({single}), logits cached "
         "once (offline)", cached, alone, "logits"),
        (f"kd_ensemble_alpha_{ALT_ALPHA}", f"{ens} (alpha {ALT_ALPHA}, T "
         f"{recipe.temperature}), logits cached", cached,
         alone.replace(alpha=ALT_ALPHA), "logits"),
    ]
    return [_Plan(*plan) for plan in plans]


def same_steps(recipe: recipes.Recipe) -> int:
    """The epoch cap without a transfer set that allows as many steps.

    An epoch with the transfer set is `1 + transfer_size` times as long,
    so a row without it capped at `recipe.epochs` would get that many
    times fewer updates: with the same cap, the variants of seed 0 ran
    to it (best epochs 45-58 of 60) while the default row stopped early
    (best 14 of 34). Patience stays in each row's own epochs, so every
    row still stops once it has left its plateau.

    Args:
        recipe: `tfkd.recipes.Recipe` of the transfer-set row.

    Returns:
        int. `recipe.epochs * (1 + recipe.transfer_size)`, rounded.

    Example:

    ```python
    same_steps(Recipe(epochs=60, transfer_size=5.0))  # 360
    ```
    """
    return round(recipe.epochs * (1 + recipe.transfer_size))


def _teachers(data, recipe, seed, ensemble_size, log):
    # The teachers stop by their own patience, as `recipes.train_teachers`.
    recipe = recipe.replace(patience=recipe.teacher_patience)
    members, rows = [], {}
    for k in range(ensemble_size):
        member_seed = seed * recipes.MEMBER_SEED_STRIDE + k
        keras.utils.set_random_seed(member_seed)
        started = time.perf_counter()
        with _native_logs.native_logs_filtered():
            train_data = recipes.reshuffled(data, member_seed,
                                            recipe.batch_size)
            model = models.teacher(data.spec)
            _, history = recipes.train_supervised(model, train_data, recipe,
                                                  verbose=0)
        row = _scores(model, data, history, started)
        row["recipe"] = "DCN-v2 teacher (tfkd.models.teacher), hard labels"
        log(f"teacher {k + 1}/{ensemble_size}", row)
        members.append(model)
        rows[f"member_{k}"] = row
    return members, rows


def _ensemble_row(ensemble, data, rows):
    member_rows = [rows[n] for n in rows if n.startswith("member_")]
    member_rows.append(rows["teacher"])
    with _native_logs.native_logs_filtered():
        test = evaluation.evaluate_ctr(ensemble, data.test)["auc"]
        val = evaluation.evaluate_ctr(ensemble, data.val)["auc"]
    return {
        "auc": test,
        "val_auc": val,
        "params": sum(evaluation.count_params(m) for m in ensemble.members),
        "epochs": sum(r["epochs"] for r in member_rows),
        "best_epoch": 0,  # nothing trained: the members' rows have theirs
        "seconds": sum(r["seconds"] for r in member_rows),
        "recipe": f"average of {len(ensemble.members)} teachers' logits",
    }


def _train_data(data, columns, source, seed, config):
    """The data a row trains on, built after its seed is set.

    None: the labelled rows, shuffled by `seed`. `"logits"`: the same
    rows with the ensemble's cached logits as a feature; the validation
    rows carry them too, since the Distiller computes its loss on
    validation batches as well. Built afresh per row right after
    `keras.utils.set_random_seed`, so the live and cached rows see the
    same batches in the same order.
    """
    keras.utils.set_random_seed(seed)
    if source is None:
        result = recipes.reshuffled(data, seed, config.batch_size)
        keras.utils.set_random_seed(seed)
        return result
    val = _dataset(columns["val"], data.frames["val"], data.spec, None,
                   config.batch_size)
    train = _dataset(columns["train"], data.frames["train"], data.spec,
                     seed, config.batch_size)
    keras.utils.set_random_seed(seed)
    return dataclasses.replace(data, train=train, val=val)


def _dataset(features, frame, spec, seed, batch_size):
    labels = frame[spec.label].to_numpy(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if seed is not None:
        dataset = dataset.shuffle(len(labels), seed=seed,
                                  reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _student_row(plan, train_data, data, log):
    started = time.perf_counter()
    with _native_logs.native_logs_filtered():
        student = (plan.student or models.student)(data.spec)
        if plan.teacher is None:
            _, history = recipes.train_supervised(student, train_data,
                                                  plan.config, verbose=0)
        else:
            _, history = recipes.train_distilled(
                plan.teacher, student, train_data, plan.config, verbose=0,
                feature_distillation=plan.hint)
    row = _scores(student, data, history, started)
    row["recipe"] = plan.description
    log(plan.name, row)
    return row


def _scores(model, data, history, started):
    """Test AUC of the restored (best-epoch) weights and their val AUC."""
    values = history.history.get("val_auc") or [float("nan")]
    with _native_logs.native_logs_filtered():
        test = evaluation.evaluate_ctr(model, data.test)["auc"]
    return {
        "auc": test,
        "val_auc": float(max(values)),
        "params": evaluation.count_params(model),
        "epochs": len(values),
        # Which epoch's weights were restored: one at the `epochs` cap
        # says the cap, not early stopping, ended the run.
        "best_epoch": int(np.argmax(values)) + 1,
        "seconds": time.perf_counter() - started,
    }


class _Log:
    """One line per trained model on stderr (stdout may hold the JSON)."""

    def __init__(self, seed, verbose):
        self.seed = seed
        self.verbose = verbose

    def __call__(self, label, row):
        if not self.verbose:
            return
        epochs = f"{row['epochs']} epoch{'s' * (row['epochs'] != 1)}"
        if 0 < row["best_epoch"] < row["epochs"]:
            epochs += f" (best {row['best_epoch']})"
        print(f"seed {self.seed} {label}: {epochs}, val auc "
              f"{row['val_auc']:.4f}, test auc {row['auc']:.4f}, "
              f"{row['seconds']:.0f} s", file=sys.stderr, flush=True)
