"""The default CTR recipe at other hard-label weights, on the bench's seeds.

For each model seed this trains the same five teachers `tfkd bench
--quality` trains (same member seeds and shuffles, so the ensemble is the
bench's), then distils the bench's `student_distilled` row (ensemble + 5x
transfer set, `tfkd.recipes.Recipe`) once per `alpha:T` pair, each from
the same seed: only the distillation settings differ between the rows.
Prints one line per model and writes validation and test AUC per row.

    .venv/bin/python tools/alpha_sweep.py --seed 0 --pairs 0.2:2 0.3:2 0.5:2

One seed is about 40 minutes on a quiet 2-core machine; run seeds as
separate processes to use both cores.
"""

import argparse
import json

from tfkd import quality_bench
from tfkd import quality_rows
from tfkd import recipes
from tfkd import teachers


def sweep(seed, pairs, recipe=None):
    """The `student_distilled` row of `seed` at each `(alpha, T)` pair.

    Args:
        seed: int. The bench's model seed.
        pairs: list of `(alpha, temperature)`.
        recipe: `tfkd.recipes.Recipe` or None for the default.

    Returns:
        dict of row name to the bench's row dict (`auc`, `val_auc`, ...).
    """
    recipe = recipe or recipes.Recipe()
    data = quality_bench._load(None, recipe)
    log = quality_rows._Log(seed, 1)
    members, _ = quality_rows._teachers(data, recipe, seed, recipe.teachers,
                                        log)
    ensemble = teachers.Ensemble(members)
    rows = {}
    for alpha, temperature in pairs:
        config = recipe.replace(seed=seed, alpha=alpha,
                                temperature=temperature)
        plan = quality_rows._Plan(f"alpha {alpha:g}, T {temperature:g}",
                                  "default recipe", ensemble, config, None)
        train = quality_rows._train_data(data, None, None, seed, config)
        rows[plan.name] = quality_rows._student_row(plan, train, data, log)
    return rows


def _pair(text):
    alpha, temperature = text.split(":")
    return float(alpha), float(temperature)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=_pair, nargs="+",
                        default=[(0.2, 2.0), (0.3, 2.0), (0.5, 2.0)],
                        help="alpha:T pairs (default: 0.2:2 0.3:2 0.5:2)")
    parser.add_argument("--json", default="-")
    args = parser.parse_args()
    rows = sweep(args.seed, args.pairs)
    text = json.dumps(rows, indent=2, default=float)
    if args.json == "-":
        print(text)
    else:
        with open(args.json, "w") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
