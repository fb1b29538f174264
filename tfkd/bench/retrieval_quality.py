"""Retrieval distillation over seeds: `tfkd bench --quality --task retrieval`.

MovieLens-100K leave-one-out by time (split seed 42). Per model seed:
two-tower teachers (dim 64, hidden 128-64), their `ensemble_two_tower`, a
scratch student (dim 8, hidden 16: about 0.1 of one teacher's parameters)
and that student distilled from the ensemble by `tfkd.RetrievalDistiller`
with each method, all trained alike: Adam, batch 256, early stopping on
validation NDCG@10 (100 sampled negatives), best epoch restored. The
method with the best mean validation NDCG@10 is `student_distilled`, the
others are `variants`. Test HR@10 / NDCG@10 (`evaluate_retrieval`, 100
sampled negatives and full catalogue) as mean and sample sd over seeds:

```
ndcg_ratio = NDCG@10(student_distilled) / NDCG@10(student_scratch)
gap_recovery = (NDCG@10(distilled) - NDCG@10(scratch))
               / (NDCG@10(teacher_ensemble) - NDCG@10(scratch))
```

and `full_gap_recovery`, the same over the full catalogue.
"""

import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd.bench import utils as bench_utils
from tfkd.bench.retrieval_report import METRICS
from tfkd.bench.retrieval_report import MONITOR
from tfkd.bench.retrieval_report import summarise
from tfkd.bench.retrieval_report import table

__all__ = ["METRICS", "MONITOR", "RetrievalSettings", "ensemble_two_tower",
           "run_retrieval_quality_bench", "run_seed", "summarise", "table"]
from tfkd.distillers.retrieval_distiller import RetrievalDistiller
from tfkd.models.two_tower import TwoTowerModel

SPLIT_SEED = 42
TEACHER = {"embedding_dim": 64, "hidden": (128, 64)}
STUDENT = {"embedding_dim": 8, "hidden": (16,)}
# Ensemble member i of model seed s trains from seed s + i * MEMBER_STRIDE,
# so no two members of any seeds' ensembles share initial weights.
MEMBER_STRIDE = 1000


@dataclasses.dataclass(frozen=True)
class RetrievalSettings:
    """The recipe every model of the retrieval bench shares.

    Distillation settings chosen on validation only (seed 0, one teacher).
    Patience 20: at 10, students stopped while still climbing (README).

    Args:
        epochs: int. Maximum epochs per model. Defaults to `100`.
        patience: int. Early-stopping patience. Defaults to `20`.
        learning_rate: float. Adam's. Defaults to `1e-3`.
        logq: bool. logQ correction from the training counts in every
            model's in-batch softmax. Defaults to `True`.
        ensemble_size: int >= 1. Teachers per seed. Defaults to `2`.
        methods: tuple of str. `RetrievalDistiller` methods to run.
            Defaults to `("in_batch", "ranking")`.
        in_batch: dict. `compile` settings of `"in_batch"`.
        ranking: dict. `compile` settings of `"ranking"`.
    """

    epochs: int = 100
    patience: int = 20
    learning_rate: float = 1e-3
    logq: bool = True
    ensemble_size: int = 2
    methods: tuple[str, ...] = ("in_batch", "ranking")
    in_batch: dict = dataclasses.field(
        default_factory=lambda: {"alpha": 0.0, "temperature": 1.0})
    ranking: dict = dataclasses.field(
        default_factory=lambda: {"alpha": 0.97, "temperature": 1.0,
                                 "top_k": 20})

    def replace(self, **changes: Any) -> "RetrievalSettings":
        """A copy with the given fields changed; `None` values are kept."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes)


def ensemble_two_tower(
    members: Sequence[TwoTowerModel], name: str = "two_tower_ensemble"
) -> TwoTowerModel:
    """A `TwoTowerModel` whose logits are the mean of its members' logits.

    Each member scores `u_i . v_i / T_i` (L2-normalised towers), so the
    mean is itself one dot product, of the concatenated towers:

    ```
    mean_i u_i . v_i / T_i = [w_1 u_1, ..., w_n u_n] . [v_1, ..., v_n] / T_1
    w_i = T_1 / (n * T_i)
    ```

    The towers are the members' own (a `RetrievalDistiller` freezes them).
    `count_params` counts one logQ table, not one per member.

    Args:
        members: sequence of `TwoTowerModel`s with the same tower inputs.
        name: str. Defaults to `"two_tower_ensemble"`.

    Returns:
        `TwoTowerModel` with temperature `members[0].temperature`.

    Raises:
        ValueError: if `members` is empty or not all `TwoTowerModel`s.

    Example:

    ```python
    teacher = ensemble_two_tower([model_a, model_b, model_c])
    tfkd.evaluation.evaluate_retrieval(teacher, data)
    ```
    """
    members = list(members)
    if not members or not all(isinstance(m, TwoTowerModel) for m in members):
        raise ValueError(
            "`members` must be a non-empty list of TwoTowerModel. Received: "
            f"{[type(m).__name__ for m in members]}"
        )
    base = members[0].temperature
    weights = [base / (len(members) * m.temperature) for m in members]
    users = _concatenated([m.user_model for m in members], weights,
                          f"{name}_user_tower")
    items = _concatenated([m.item_model for m in members],
                          [1.0] * len(members), f"{name}_item_tower")
    return TwoTowerModel(users, items, temperature=base,
                         num_items=members[0].num_items, name=name)


def _concatenated(towers, weights, name):
    inputs = {k: t for tower in towers for k, t in _fresh_inputs(tower).items()}
    outputs = []
    for i, (tower, weight) in enumerate(zip(towers, weights, strict=True)):
        # Members share tower names ("user_tower"): each gets a wrapper
        # with a unique name, as a functional model requires.
        own = _fresh_inputs(tower)
        member = keras.Model(own, tower(own), name=f"{name}_{i}")
        used = {key: inputs[key] for key in own}
        outputs.append(keras.layers.Rescaling(weight)(member(used)))
    return keras.Model(inputs, keras.layers.Concatenate()(outputs), name=name)


def _fresh_inputs(tower):
    return {t.name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name)
            for t in tower.inputs}


class _ValidationNdcg(keras.callbacks.Callback):
    """Logs validation NDCG@10 of a two-tower before EarlyStopping reads it."""

    def __init__(self, scored, data):
        super().__init__()
        self.scored = scored
        self.data = data

    def on_epoch_end(self, epoch, logs=None):
        scores = evaluation.evaluate_retrieval(self.scored, self.data,
                                               split="val")
        logs[MONITOR] = scores["ndcg@10"]


def _fit(trained, scored, data, settings):
    """Fits `trained`, early-stopped on `scored`'s validation NDCG@10."""
    stop = keras.callbacks.EarlyStopping(
        monitor=MONITOR, mode="max", patience=settings.patience,
        restore_best_weights=True)
    history = trained.fit(
        data.train, epochs=settings.epochs, verbose=0,
        callbacks=[_ValidationNdcg(scored, data), stop], shuffle=False,
    ).history[MONITOR]
    return {"epochs": len(history), "best_epoch": int(np.argmax(history)) + 1}


def _evaluate(model, data):
    sampled = evaluation.evaluate_retrieval(model, data)
    full = evaluation.evaluate_retrieval(model, data, num_negatives=None)
    val = evaluation.evaluate_retrieval(model, data, split="val")
    return {"hr@10": sampled["hit_rate@10"], "ndcg@10": sampled["ndcg@10"],
            "full_hr@10": full["hit_rate@10"],
            "full_ndcg@10": full["ndcg@10"], MONITOR: val["ndcg@10"]}


def _two_tower(data, sizes, seed, settings):
    keras.utils.set_random_seed(seed)
    counts = np.bincount(data.frames["train"]["item_id"],
                         minlength=data.spec["item_id"].vocabulary_size)
    return models.two_tower(data.spec, item_counts=counts if settings.logq
                            else None, **sizes)


def _trained(data, sizes, seed, settings, recipe):
    started = time.perf_counter()
    model = _two_tower(data, sizes, seed, settings)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate))
    row = _fit(model, model, data, settings)
    return model, dict(row, **_evaluate(model, data), recipe=recipe,
                       params=int(model.count_params()),
                       seconds=time.perf_counter() - started)


def _distilled(teacher, data, seed, settings, method):
    started = time.perf_counter()
    student = _two_tower(data, STUDENT, seed, settings)
    options = dict(getattr(settings, method))
    if method == "ranking":
        options.update(candidates=data.items, users=data.users,
                       seen=data.frames["train"])
    distiller = RetrievalDistiller(teacher, student, seed=seed)
    distiller.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                      method=method, **options)
    row = _fit(distiller, student, data, settings)
    recipe = f"{method}: {getattr(settings, method)}"
    return dict(row, **_evaluate(student, data), recipe=recipe,
                params=int(student.count_params()),
                seconds=time.perf_counter() - started)


def run_seed(data: Any, settings: RetrievalSettings, seed: int,
             verbose: int = 1) -> dict[str, dict[str, Any]]:
    """Trains and scores every model of one seed.

    Args:
        data: `MovieLensData` of the retrieval task.
        settings: `RetrievalSettings`.
        seed: int. Model seed.
        verbose: int. 1 prints one line per model on stderr.

    Returns:
        dict of row name (`teacher`, `teacher_ensemble`, `student_scratch`,
        `kd_<method>`) to its figures (`METRICS`, `params`, `epochs`,
        `best_epoch`, `seconds`, `recipe`).
    """
    logq = "logQ" if settings.logq else "no logQ"
    members = [_trained(data, TEACHER, seed + i * MEMBER_STRIDE, settings,
                        f"dim 64, hidden 128-64, {logq}")
               for i in range(settings.ensemble_size)]
    rows = {"teacher": _log(seed, "teacher", members[0][1], verbose)}
    started = time.perf_counter()
    ensemble = ensemble_two_tower([m for m, _ in members])
    row = dict(_evaluate(ensemble, data), best_epoch=None,
               recipe=f"mean logits of {len(members)} teachers")
    for key in ("params", "epochs", "seconds"):
        row[key] = sum(r[key] for _, r in members)
    row["seconds"] += time.perf_counter() - started
    rows["teacher_ensemble"] = _log(seed, "teacher_ensemble", row, verbose)
    _, row = _trained(data, STUDENT, seed, settings,
                      f"dim 8, hidden 16, {logq}")
    rows["student_scratch"] = _log(seed, "student_scratch", row, verbose)
    for method in settings.methods:
        row = _distilled(ensemble, data, seed, settings, method)
        rows[f"kd_{method}"] = _log(seed, f"kd_{method}", row, verbose)
    return rows


def _log(seed, name, row, verbose):
    if verbose:
        print(f"seed {seed}  {name:<17} params {row['params']:>9,}  "
              f"epochs {row['epochs']:>3}  val ndcg {row[MONITOR]:.4f}  "
              f"hr@10 {row['hr@10']:.4f}  ndcg@10 {row['ndcg@10']:.4f}  "
              f"{row['seconds']:.0f} s", file=sys.stderr, flush=True)
    return row


def run_retrieval_quality_bench(
    seeds: Sequence[int] = (0, 1, 2),
    settings: RetrievalSettings | None = None,
    data: Any = None,
    json_path: str | None = None,
    verbose: int = 1,
) -> dict[str, Any]:
    """Trains the teachers and students of every seed and summarises them.

    Args:
        seeds: sequence of int. Model seeds; the split stays fixed.
            Defaults to `(0, 1, 2)`.
        settings: `RetrievalSettings` or None. Defaults to
            `RetrievalSettings()`.
        data: `MovieLensData` of the retrieval task, or None for
            MovieLens-100K leave-one-out. Defaults to `None`.
        json_path: str or None. Also write the report here (`"-"` prints
            it). Defaults to `None`.
        verbose: int. 0 silent; 1 one line per model on stderr. Defaults
            to `1`.

    Returns:
        dict as `summarise`, plus `settings` and `wall_seconds`. Each row
        holds `hr@10_mean`, `hr@10_std`, `ndcg@10_mean`, `ndcg@10_std`,
        the same for `full_hr@10`, `full_ndcg@10` and `val_ndcg@10`, each
        `*_per_seed`, `params`, `seeds`, `recipe`.

    Raises:
        TypeError, ValueError: on bad seeds or `ensemble_size`, or data
            that is not a retrieval task.

    Example:

    ```python
    report = run_retrieval_quality_bench(seeds=[0])
    report["ndcg_ratio"]["mean"]
    ```
    """
    settings = RetrievalSettings() if settings is None else settings
    seed_list = bench_utils.validate_seeds(seeds, settings.ensemble_size)
    if data is None:
        data = datasets.movielens_100k(task="retrieval", seed=SPLIT_SEED)
    task = getattr(getattr(data, "spec", None), "task", None)
    if task != "retrieval":
        raise ValueError(
            "The retrieval bench ranks held-out items per user: pass "
            "retrieval data, e.g. `tfkd.datasets.movielens_100k("
            f"task='retrieval')`. Received: data with task={task!r}")
    started = time.perf_counter()
    runs = [run_seed(data, settings, seed, verbose) for seed in seed_list]
    report = summarise(runs, seed_list)
    report["settings"] = dict(
        dataclasses.asdict(settings), seeds=seed_list, task="retrieval",
        versions=bench_utils.package_versions(["tensorflow", "keras"]))
    report["wall_seconds"] = time.perf_counter() - started
    if json_path is not None:
        bench_utils.write_json(report, json_path)
    return report
