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
the same seed skips the 10 minutes they take. `--student embedding_dim=4`
changes the student preset (`tfkd.models.student(spec, embedding_dim=4)`) for
every row, and `--scratch` adds that student trained from scratch, for the
gap recovery of another student size. One seed with three rows is about
60 minutes with three seeds side by side on 2 cores.
"""

import argparse
import dataclasses
import functools
import os

import keras

from tfkd import models
from tfkd import recipes
from tfkd import teachers
from tfkd.bench import quality as quality_bench
from tfkd.bench import quality_rows
from tfkd.bench import utils as bench_utils


def sweep(seed, rows, recipe=None, teachers_dir=None, student=None,
          scratch=False, data=None):
    """The `student_distilled` row of `seed` under each set of overrides.

    Args:
        seed: int. The bench's model seed.
        rows: list of dicts of `Recipe` field to value, e.g.
            `[{"alpha": 0.3}, {"temperature": 1.0}]`.
        recipe: `tfkd.recipes.Recipe` or None for the default.
        teachers_dir: str or None. Where the seed's teachers are loaded
            from if saved there (whatever `recipe` says: empty the folder
            after changing how teachers train), and saved to after
            training.
        student: dict or None. Overrides of the student preset's
            `ranking_model` arguments.
        scratch: bool. Also train the student from scratch (row
            `"scratch"`).
        data: ctr `MovieLensData` or None for the bench's MovieLens-100K.

    Returns:
        dict of row name (its overrides) to the bench's row dict (`auc`,
        `val_auc`, ...).
    """
    recipe = recipe or recipes.Recipe()
    data = quality_bench._load(data, recipe)
    log = quality_rows._Log(seed, 1)
    members = _members(data, recipe, seed, log, teachers_dir)
    ensemble = teachers.Ensemble(members)
    build = functools.partial(models.student, **student) if student else None
    results = {}
    plans = [("scratch", None, recipe)] if scratch else []
    for overrides in rows:
        name = ", ".join(f"{k} {v:g}" for k, v in overrides.items())
        plans.append((name or "default recipe", ensemble,
                      recipe.replace(**overrides)))
    for name, teacher, config in plans:
        config = config.replace(seed=seed)
        plan = quality_rows._Plan(name, "default recipe", teacher, config,
                                  None, student=build)
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


def _overrides(text, fields, what):
    """`"alpha=0.1,temperature=1"` -> `{"alpha": 0.1, "temperature": 1}`."""
    overrides = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise argparse.ArgumentTypeError(
                f"Unknown {what} {key!r}; expected one of {sorted(fields)}.")
        overrides[key] = float(value) if "." in value else int(value)
    return overrides


def _row(text):
    fields = [f.name for f in dataclasses.fields(recipes.Recipe)]
    return _overrides(text, fields, "Recipe field")


def _student_overrides(text):
    return _overrides(text, ["embedding_dim"], "student setting")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=_row, nargs="+",
                        default=[{}, {"alpha": 0.3}, {"alpha": 0.5}],
                        help="Recipe overrides per row, e.g. "
                        "alpha=0.1,temperature=1 (an empty string is the "
                        "default recipe)")
    parser.add_argument("--base", type=_row, default={},
                        help="Recipe overrides for every row, scratch "
                        "included, e.g. epochs=40,patience=10")
    parser.add_argument("--teachers-dir", default=None)
    parser.add_argument("--student", type=_student_overrides, default=None,
                        help="student preset overrides, e.g. "
                        "embedding_dim=4")
    parser.add_argument("--scratch", action="store_true",
                        help="also train the student from scratch")
    parser.add_argument("--json", default="-")
    args = parser.parse_args()
    recipe = recipes.Recipe().replace(**args.base)
    rows = sweep(args.seed, args.rows, recipe, teachers_dir=args.teachers_dir,
                 student=args.student, scratch=args.scratch)
    bench_utils.write_json(rows, args.json)


if __name__ == "__main__":
    main()
