"""Distilled students with and without a transfer set, on MovieLens-100K.

The demo's split (seed 42) and recipe (`tfkd.recipes.Recipe`: alpha 0.2,
T 2, Adam 2e-3, batch 256, early stopping on validation AUC with patience
5, best epoch restored). For every model seed a teacher
(`tfkd.models.teacher`) is trained as the demo trains it, then each row
distils a fresh `tfkd.models.student` from the same seed:

- no transfer set: the demo's `recipes.train_distilled` on the training rows;
- transfer set: `tfkd.datasets.with_transfer_set(data, size=5.0)`, the
  training rows plus 5x as many unobserved user-item pairs (soft term
  only), drawn by popularity or uniformly;
- control: the same mixed batches with the transfer rows weighted 0 in
  both terms, which separates the extra soft targets from the smaller
  share of labelled rows per batch.

Test AUC and logloss on the test split, epochs run, and wall time of the
row (building the transfer set included).

    .venv/bin/python tools/transfer_set_table.py              # seed 0
    .venv/bin/python tools/transfer_set_table.py --seeds 0 1 2
"""

import argparse
import dataclasses
import json
import time

import keras
import numpy as np

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd import recipes

SPLIT_SEED = 42
ROWS = (
    ("distilled, no transfer set", None),
    ("distilled + transfer set 5x (popularity)", "popularity"),
    ("distilled + transfer set 5x (uniform)", "uniform"),
    ("control: popularity rows, weight 0 in both terms", "control"),
)
# The recipe these figures were measured with, before the ensemble, the
# transfer set and patience 10 became `Recipe`'s defaults.
RECIPE = {"epochs": 20, "patience": 5, "teachers": 1, "transfer_size": 0}


def _train_data(data, row, size, seed, batch_size):
    if row is None:
        return data
    sampling = "popularity" if row == "control" else row
    train = datasets.with_transfer_set(
        data, size=size, seed=seed, sampling=sampling, batch_size=batch_size
    )
    if row == "control":
        train = train.map(
            lambda x, y, w: (x, y, {"student": w["student"],
                                    "distillation": w["student"]})
        )
    return dataclasses.replace(data, train=train)


def run(seeds, size, rows):
    data = datasets.movielens_100k(task="ctr", seed=SPLIT_SEED)
    results = {label: [] for label, _ in rows}
    for seed in seeds:
        config = recipes.Recipe(seed=seed, **RECIPE)
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        teacher, _ = recipes.train_supervised(
            models.teacher(data.spec), data, config, verbose=0
        )
        scores = evaluation.evaluate_ctr(teacher, data.test)
        print(f"seed {seed}  teacher: auc {scores['auc']:.4f}, "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        for label, row in rows:
            keras.utils.set_random_seed(seed)
            started = time.perf_counter()
            train_data = _train_data(data, row, size, seed,
                                     config.batch_size)
            student, history = recipes.train_distilled(
                teacher, models.student(data.spec), train_data, config,
                verbose=0,
            )
            result = {
                **evaluation.evaluate_ctr(student, data.test),
                "epochs": len(history.history["val_auc"]),
                "seconds": time.perf_counter() - started,
            }
            results[label].append(result)
            print(f"seed {seed}  {label}: auc {result['auc']:.4f}, "
                  f"logloss {result['logloss']:.4f}, {result['epochs']} "
                  f"epochs, {result['seconds']:.0f} s", flush=True)
    return results


def table(results):
    lines = [
        "| student | test AUC | test logloss | epochs | wall s |",
        "|---|---|---|---|---|",
    ]
    for label, runs in results.items():
        cells = []
        for key, digits in (("auc", 4), ("logloss", 4), ("epochs", 1),
                            ("seconds", 0)):
            values = np.array([r[key] for r in runs], dtype=float)
            cell = f"{values.mean():.{digits}f}"
            if len(values) > 1:
                cell += f" ± {values.std(ddof=1):.{digits}f}"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--size", type=float, default=5.0)
    parser.add_argument("--rows", nargs="+", default=None,
                        choices=["none", "popularity", "uniform", "control"],
                        help="Rows to run (default: all).")
    parser.add_argument("--json", help="Also write the runs here.")
    args = parser.parse_args()
    rows = [(label, row) for label, row in ROWS
            if args.rows is None or (row or "none") in args.rows]
    results = run(args.seeds, args.size, rows)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=float)


if __name__ == "__main__":
    main()
