"""Two-tower students distilled from a two-tower teacher, on MovieLens-100K.

Leave-one-out by time (`tfkd.datasets.movielens_100k(task="retrieval")`:
per user the last interaction is test, the one before validation). Per
seed:

- teacher: `tfkd.models.two_tower(embedding_dim=64, hidden=(128, 64))`
  with the logQ correction from the training counts;
- student from scratch: `two_tower(embedding_dim=8, hidden=(16,))`, about
  0.1 of the teacher's parameters, same recipe;
- the same student distilled with `tfkd.RetrievalDistiller`,
  `method="in_batch"` and `method="ranking"` (teacher top-K over the
  catalogue, training pairs left out).

Every model gets the same recipe: Adam, batch 256, at most `--epochs`
epochs, early stopping on validation NDCG@10 (100 sampled negatives) with
`--patience`, best epoch restored. The distillation defaults were chosen
on the validation split only (seed 0, patience 8; val NDCG@10 of the
scratch student 0.368): in_batch alpha 0 / T 1 (0.380; alpha 0.1 / T 2
0.377, 0.5 / 1 0.375, 0 / 2 0.374, 0 / 0.5 0.373, 0.1 / 4 0.375); ranking
alpha 0.97 / T 1 / top-K 20 (0.375; alpha 0.5 / K 10 0.329, 0.5 / K 30
0.349, 0.9 / K 10 0.357, 0.7 / T 3 / K 10 0.353).
Reported: parameters, validation NDCG@10, test HR@10 / NDCG@10 against
100 sampled negatives and over the full catalogue, and the NDCG@10 ratio
distilled / scratch.

    nice -n 5 .venv/bin/python tools/retrieval_distillation_table.py
    nice -n 5 .venv/bin/python tools/retrieval_distillation_table.py \\
        --seeds 0 1 2 --json retrieval_table.json
"""

import argparse
import json
import time

import keras
import numpy as np

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd.retrieval_distiller import RetrievalDistiller

SPLIT_SEED = 42
TEACHER = {"embedding_dim": 64, "hidden": (128, 64)}
STUDENT = {"embedding_dim": 8, "hidden": (16,)}
MONITOR = "val_ndcg@10"


class RetrievalValidation(keras.callbacks.Callback):
    """Puts validation HR@10 / NDCG@10 of a two-tower into the epoch logs,
    before `EarlyStopping` reads them."""

    def __init__(self, scored, data):
        super().__init__()
        self.scored = scored
        self.data = data

    def on_epoch_end(self, epoch, logs=None):
        scores = evaluation.evaluate_retrieval(
            self.scored, self.data, split="val"
        )
        logs["val_hit_rate@10"] = scores["hit_rate@10"]
        logs[MONITOR] = scores["ndcg@10"]


def _fit(trained, scored, data, args):
    """Trains `trained` with early stopping on `scored`'s val NDCG@10."""
    callbacks = [
        RetrievalValidation(scored, data),
        keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=args.patience,
            restore_best_weights=True,
        ),
    ]
    history = trained.fit(
        data.train, epochs=args.epochs, callbacks=callbacks, verbose=0
    )
    return len(history.history[MONITOR]), max(history.history[MONITOR])


def _two_tower(data, sizes, counts):
    return models.two_tower(data.spec, item_counts=counts, **sizes)


def _scores(model, data, epochs, best_val, started):
    sampled = evaluation.evaluate_retrieval(model, data)
    full = evaluation.evaluate_retrieval(model, data, num_negatives=None)
    return {
        "params": int(model.count_params()),
        "epochs": epochs,
        "val_ndcg@10": best_val,
        "hr@10": sampled["hit_rate@10"],
        "ndcg@10": sampled["ndcg@10"],
        "full_hr@10": full["hit_rate@10"],
        "full_ndcg@10": full["ndcg@10"],
        "seconds": time.perf_counter() - started,
    }


def _distilled(teacher, data, counts, args, seed, method):
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    student = _two_tower(data, STUDENT, counts)
    distiller = RetrievalDistiller(teacher, student, seed=seed)
    settings = {
        "in_batch": {"alpha": args.alpha_in_batch,
                     "temperature": args.temperature_in_batch},
        "ranking": {"alpha": args.alpha_ranking,
                    "temperature": args.temperature_ranking,
                    "top_k": args.top_k, "candidates": data.items,
                    "users": data.users, "seen": data.frames["train"]},
    }[method]
    distiller.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        method=method, **settings,
    )
    epochs, best = _fit(distiller, student, data, args)
    return _scores(student, data, epochs, best, started)


def run_seed(data, counts, args, seed):
    rows = {}
    for label, sizes in (("teacher", TEACHER), ("student_scratch", STUDENT)):
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        model = _two_tower(data, sizes, counts)
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
        epochs, best = _fit(model, model, data, args)
        rows[label] = _scores(model, data, epochs, best, started)
        if label == "teacher":
            teacher = model
        _print_row(seed, label, rows[label])
    for method in args.methods:
        label = f"student_{method}"
        rows[label] = _distilled(teacher, data, counts, args, seed, method)
        _print_row(seed, label, rows[label])
    return rows


def _print_row(seed, label, row):
    print(
        f"seed {seed}  {label:<18} params {row['params']:>7,}  "
        f"epochs {row['epochs']:>3}  val ndcg {row['val_ndcg@10']:.4f}  "
        f"hr@10 {row['hr@10']:.4f}  ndcg@10 {row['ndcg@10']:.4f}  "
        f"full hr@10 {row['full_hr@10']:.4f}  "
        f"full ndcg@10 {row['full_ndcg@10']:.4f}  "
        f"{row['seconds']:.0f} s",
        flush=True,
    )


def summarize(per_seed):
    labels = list(per_seed[0])
    keys = [k for k in per_seed[0][labels[0]] if k != "seconds"]
    table = {}
    for label in labels:
        table[label] = {"seeds": len(per_seed)}
        for key in keys:
            values = np.array([rows[label][key] for rows in per_seed], float)
            table[label][f"{key}_mean"] = float(values.mean())
            table[label][f"{key}_std"] = float(values.std())
    scratch = np.array([r["student_scratch"]["ndcg@10"] for r in per_seed])
    for label in labels:
        if label.startswith("student_") and label != "student_scratch":
            ratios = np.array([r[label]["ndcg@10"] for r in per_seed])
            ratios = ratios / scratch
            table[label]["ndcg@10_ratio_to_scratch_mean"] = float(
                ratios.mean()
            )
            table[label]["ndcg@10_ratio_to_scratch_std"] = float(
                ratios.std()
            )
    return table


def _print_table(table):
    print("\nmean ± std over seeds (test split; val only for selection)")
    for label, row in table.items():
        ratio = row.get("ndcg@10_ratio_to_scratch_mean")
        print(
            f"{label:<18} params {row['params_mean']:>9,.0f}  "
            f"hr@10 {row['hr@10_mean']:.4f} ± {row['hr@10_std']:.4f}  "
            f"ndcg@10 {row['ndcg@10_mean']:.4f} ± {row['ndcg@10_std']:.4f}  "
            f"full hr@10 {row['full_hr@10_mean']:.4f}  "
            f"full ndcg@10 {row['full_ndcg@10_mean']:.4f}"
            + ("" if ratio is None else f"  ndcg ratio {ratio:.3f}")
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--methods", nargs="+", default=["in_batch",
                                                         "ranking"],
                        choices=["in_batch", "ranking"])
    parser.add_argument("--alpha-in-batch", type=float, default=0.0)
    parser.add_argument("--temperature-in-batch", type=float, default=1.0)
    parser.add_argument("--alpha-ranking", type=float, default=0.97)
    parser.add_argument("--temperature-ranking", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--json", help="write the results to this file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data = datasets.movielens_100k(task="retrieval", seed=SPLIT_SEED)
    counts = np.bincount(
        data.frames["train"]["item_id"],
        minlength=data.spec["item_id"].vocabulary_size,
    )
    per_seed = [run_seed(data, counts, args, seed) for seed in args.seeds]
    table = summarize(per_seed)
    _print_table(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": {k: v for k, v in vars(args).items()},
                       "summary": table, "per_seed": per_seed}, f, indent=2)


if __name__ == "__main__":
    main()
