"""Reproduces the README's seed table: scratch vs distilled students.

One MovieLens-100K CTR split (the demo's, seed 42); for every model seed a
teacher is trained, then each student row below starts from that seed. The
table gives the test AUC as mean +- sample standard deviation over seeds.

    .venv/bin/python tools/seed_table.py            # seeds 0 1 2, ~7 min
    .venv/bin/python tools/seed_table.py --seeds 0  # one seed
"""

import argparse
import dataclasses
import json

import keras
import numpy as np

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd import recipes

SPLIT_SEED = 42
# (row label, training, Recipe overrides)
ROWS = (
    ("scratch, all 20 epochs, best epoch restored", "scratch",
     {"patience": 20}),
    ("scratch, patience 5", "scratch", {}),
    ("distilled (alpha 0.2, T 2), patience 5", "distilled", {}),
    ("distilled (alpha 0.5, T 1), patience 5", "distilled",
     {"alpha": 0.5, "temperature": 1.0}),
    ("distilled (alpha 0, T 1: soft targets only), patience 5", "distilled",
     {"alpha": 0.0, "temperature": 1.0}),
)
# The recipe these figures were measured with, before the ensemble, the
# transfer set and patience 10 became `Recipe`'s defaults.
RECIPE = {"epochs": 20, "patience": 5, "teachers": 1, "transfer_size": 0}


def run(seeds):
    data = datasets.movielens_100k(task="ctr", seed=SPLIT_SEED)
    aucs = {label: [] for label, _, _ in ROWS}
    for seed in seeds:
        base = recipes.Recipe(seed=seed, **RECIPE)
        keras.utils.set_random_seed(seed)
        teacher, _ = recipes.train_supervised(
            models.teacher(data.spec), data, base, verbose=0
        )
        for label, training, overrides in ROWS:
            config = dataclasses.replace(base, **overrides)
            keras.utils.set_random_seed(seed)
            student = models.student(data.spec)
            if training == "scratch":
                recipes.train_supervised(student, data, config, verbose=0)
            else:
                recipes.train_distilled(
                    teacher, student, data, config, verbose=0
                )
            auc = evaluation.evaluate_ctr(student, data.test)["auc"]
            aucs[label].append(auc)
            print(f"seed {seed}  {label}: {auc:.4f}", flush=True)
    return aucs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="also write the AUCs to this file")
    args = parser.parse_args(argv)
    aucs = run(args.seeds)
    print("\n| student | test AUC, mean ± sd |\n|---|---|")
    for label, values in aucs.items():
        sd = np.std(values, ddof=1) if len(values) > 1 else 0.0
        print(f"| {label} | {np.mean(values):.4f} ± {sd:.4f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": args.seeds, "auc": aucs}, f, indent=2)


if __name__ == "__main__":
    main()
