"""The default CTR recipe with some settings changed, on the bench's seeds.

For each model seed this trains the same five teachers `tfkd bench
--quality` trains (same member seeds and shuffles, so the ensemble is the
bench's), then distils the bench's `student_distilled` row (ensemble +
transfer set, `tfkd.recipes.Recipe`) once per row of overrides, each from
the same seed: only the overridden settings differ between the rows.
Prints one line per model and writes validation and test AUC per row.

    .venv/bin/python tools/recipe_sweep.py --seed 0 \
        --rows alpha=0.3 alpha=0.1 temperature=1 transfer_size=10 \
        --teachers-dir artifacts/sweep_teachers

`--teachers-dir` keeps each seed's trained teachers, so a later sweep on
the same seed skips the 20 minutes they take. One seed with three rows is
about 60 minutes with three seeds side by side on 2 cores.
"""

import argparse
import dataclasses
import json
import os

import keras

from tfkd import quality_bench
from tfkd import quality_rows
from tfkd import recipes
from tfkd import teachers


def sweep(seed, rows, recipe=None, teachers_dir=None):
    """The `student_distilled` row of `seed` under each set of overrides.

    Args:
        seed: int. The bench's model seed.
        rows: list of dicts of `Recipe` field to value, e.g.
            `[{"alpha": 0.3}, {"temperature": 1.0}]`.
        recipe: `tfkd.recipes.Recipe` or None for the default.
        teachers_dir: str or None. Where the seed's teachers are loaded
            from if saved there, and saved to after training.

    Returns:
        dict of row name (its overrides) to the bench's row dict (`auc`,
        `val_auc`, ...).
    """
    recipe = recipe or recipes.Recipe()
    data = quality_bench._load(None, recipe)
    log = quality_rows._Log(seed, 1)
    members = _members(data, recipe, seed, log, teachers_dir)
    ensemble = teachers.Ensemble(members)
    results = {}
    for overrides in rows:
        config = recipe.replace(seed=seed, **overrides)
        name = ", ".join(f"{k} {v:g}" for k, v in overrides.items())
        plan = quality_rows._Plan(name or "default recipe", "default recipe",
                                  ensemble, config, None)
        train = quality_rows._train_data(data, None, None, seed, config)
        results[plan.name] = quality_rows._student_row(plan, train, data,
                                                       log)
    return results


def _members(data, recipe, seed, log, teachers_dir):
    paths = [os.path.join(teachers_dir or "", f"seed{seed}_member{k}.keras")
             for k in range(recipe.teachers)]
    if teachers_dir and all(os.path.exists(p) for p in paths):
        return [keras.saving.load_model(p) for p in paths]
    members, _ = quality_rows._teachers(data, recipe, seed, recipe.teachers,
                                        log)
    if teachers_dir:
        os.makedirs(teachers_dir, exist_ok=True)
        for model, path in zip(members, paths, strict=True):
            model.save(path)
    return members


def _row(text):
    """`"alpha=0.1,temperature=1"` -> `{"alpha": 0.1, "temperature": 1.0}`."""
    fields = {f.name: f.type for f in dataclasses.fields(recipes.Recipe)}
    overrides = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise argparse.ArgumentTypeError(
                f"Unknown Recipe field {key!r}; expected one of "
                f"{sorted(fields)}.")
        overrides[key] = float(value) if "." in value else int(value)
    return overrides


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=_row, nargs="+",
                        default=[{}, {"alpha": 0.3}, {"alpha": 0.5}],
                        help="Recipe overrides per row, e.g. "
                        "alpha=0.1,temperature=1 (an empty string is the "
                        "default recipe)")
    parser.add_argument("--teachers-dir", default=None)
    parser.add_argument("--json", default="-")
    args = parser.parse_args()
    rows = sweep(args.seed, args.rows, teachers_dir=args.teachers_dir)
    text = json.dumps(rows, indent=2, default=float)
    if args.json == "-":
        print(text)
    else:
        with open(args.json, "w") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
