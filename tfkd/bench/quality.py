"""How close a distilled student gets to its teachers: `tfkd bench --quality`.

The CTR ablation of issue 13 on one fixed split (MovieLens-100K, seed 42):
for every model seed, an ensemble of DCN-v2 teachers
(`tfkd.models.teacher`), a student from scratch (`tfkd.models.student`),
and students distilled by each recipe, all from that seed's initial
weights and all trained by `tfkd.recipes` (Adam, early stopping on
validation AUC that restores the best epoch). The report gives each
row's test AUC as mean and sample standard deviation over the seeds, and
the share of the scratch-to-ensemble gap the default student recovers:

```
gap_recovery = (AUC_distilled - AUC_scratch) / (AUC_ensemble - AUC_scratch)
```

`--task retrieval` runs the two-tower counterpart instead
(`tfkd.bench.retrieval_quality`): the same rows, with HR@10 / NDCG@10.
"""

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from tfkd.bench import utils as bench_utils
from tfkd.bench.quality_report import summarise
from tfkd.bench.quality_report import table

if TYPE_CHECKING:
    # Imported lazily at run time: `--help` answers without TensorFlow.
    from tfkd.datasets.movielens_data import MovieLensData
    from tfkd.recipes import Recipe

SPLIT_SEED = 42
DEFAULT_SEEDS = (0, 1, 2)
# MovieLens-1M's student at the 5% budget: 2-wide embeddings, 19,879
# parameters, 3.9% of the teacher's 513,569 (the preset's 5-wide ones are
# 9.7% there: its user and item tables are 6 and 2 times 100K's).
ML_1M_STUDENT = {"embedding_dim": 2}


def run_quality_bench(
    seeds: Sequence[int] = DEFAULT_SEEDS,
    ensemble_size: int = 5,
    recipe: "Recipe | None" = None,
    data: "MovieLensData | None" = None,
    transfer_size: float = 5.0,
    json_path: str | None = None,
    verbose: int = 1,
    variants: bool = True,
    student: "Callable[[Any], Any] | None" = None,
) -> dict[str, Any]:
    """Trains the teachers and students of every seed and summarises them.

    Per model seed: `ensemble_size` teachers (member 0 is the single
    teacher), their `tfkd.teachers.Ensemble`, a scratch student, and these
    students, each from the scratch student's initial weights:
    `student_distilled` (the default recipe, the one `make demo` runs: KD
    from the ensemble with the recipe's alpha and T plus a transfer set of
    `transfer_size` times the labelled rows, `tfkd.recipes.train_distilled`)
    and, without the transfer set (so with an epoch cap that allows as
    many steps, `quality_rows.same_steps`; the scratch student's too),
    the `variants` `kd_ensemble` (the live
    ensemble), `kd_single_teacher`, `kd_feature_projection` (the same plus
    a `tfkd.FeatureDistillation` hint from the teacher's last hidden layer
    to the student's, through a trained projection),
    `kd_ensemble_cached_logits` (the same as `kd_ensemble` with the
    ensemble's logits cached once by `tfkd.teachers.cache_logits`: same
    batches, same order) and `kd_ensemble_alpha_0.3`. Each row reports its
    validation AUC too, so a recipe can be chosen without looking at the
    test split.

    Args:
        seeds: sequence of int. Model seeds; the split stays fixed.
            Defaults to `(0, 1, 2)`.
        ensemble_size: int >= 1. Teachers per seed. Defaults to `5`.
        recipe: `tfkd.recipes.Recipe` or None. Defaults to `Recipe()`.
        data: `MovieLensData` of the ctr task with user and item tables,
            or None for MovieLens-100K split with seed 42. Defaults to
            `None`.
        transfer_size: float > 0. Transfer rows per training row.
            Defaults to `5.0`.
        json_path: str or None. Also write the report here (`"-"`
            prints it). Defaults to `None`.
        verbose: int. 0 silent; 1 one line per model on stderr. Defaults
            to `1`.
        variants: bool. False trains only the main rows (`variants` is
            then empty): the teachers and two students of each seed, not
            the five variant students. Defaults to `True`.
        student: callable or None. `FeatureSpec` -> the student of every
            student row. Defaults to `None`: `tfkd.models.student`.

    Returns:
        dict with `teacher`, `teacher_ensemble`, `student_scratch`,
        `student_distilled` (each: `auc_mean`, `auc_std`, `auc_per_seed`,
        `val_auc_mean`, `val_auc_per_seed`, `params`, `seeds`, ...),
        `variants` (name to the same), `gap_recovery` (`mean`, `std`,
        `per_seed`), `size_ratio`, `settings` and `wall_seconds`.

    Raises:
        TypeError, ValueError: on seeds that are not a non-empty list of
            distinct ints, an `ensemble_size` that is not an int >= 1, or
            data that is not a ctr task.

    Example:

    ```python
    report = run_quality_bench(seeds=[0], ensemble_size=2)
    report["gap_recovery"]["mean"]
    ```
    """
    from tfkd import recipes
    from tfkd.bench import quality_rows

    seed_list = bench_utils.validate_seeds(seeds, ensemble_size)
    recipe = recipes.Recipe() if recipe is None else recipe
    data = _load(data, recipe)
    started = time.perf_counter()
    runs = [quality_rows.run_seed(data, recipe, seed, ensemble_size,
                                  transfer_size, verbose, variants, student)
            for seed in seed_list]
    report = summarise(runs, seed_list)
    report["settings"] = {
        "seeds": seed_list,
        "ensemble_size": ensemble_size,
        "transfer_size": transfer_size,
        "recipe": dataclasses.asdict(recipe),
        "data": f"{data.spec.task}, {len(data.frames['train'])} train / "
                f"{len(data.frames['val'])} val / "
                f"{len(data.frames['test'])} test rows",
        "versions": bench_utils.package_versions(["tensorflow", "keras"]),
    }
    report["wall_seconds"] = time.perf_counter() - started
    if json_path is not None:
        bench_utils.write_json(report, json_path)
    return report


def _load(data, recipe):
    from tfkd import datasets

    if data is None:
        return datasets.movielens_100k(task="ctr", seed=SPLIT_SEED,
                                       batch_size=recipe.batch_size)
    task = getattr(getattr(data, "spec", None), "task", None)
    if task != "ctr":
        raise ValueError(
            "The quality bench compares test AUCs: pass ctr data, e.g. "
            "`tfkd.datasets.movielens_100k(task='ctr')`. "
            f"Received: data with task={task!r}"
        )
    return data


def main(argv: list[str] | None = None) -> int:
    """`python -m tfkd.bench.quality` (`tfkd bench --quality`).

    Writes the JSON report to `--json` (stdout by default) and a Markdown
    table to stderr. `--task retrieval` runs
    `tfkd.bench.retrieval_quality.run_retrieval_quality_bench` instead.

    Args:
        argv: list of str or None. Defaults to `sys.argv[1:]`.

    Returns:
        int: the exit status, 0.

    Example:

    ```python
    main(["--seeds", "0", "--ensemble-size", "2", "--json", "q.json"])
    ```
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.merge:
        training = [flag for flag, value in (
            ("--epochs", args.epochs), ("--patience", args.patience),
            ("--ensemble-size", args.ensemble_size),
            ("--transfer-size", args.transfer_size),
            ("--no-variants", args.no_variants or None)) if value is not None]
        if training:
            parser.error(f"--merge trains nothing: drop {', '.join(training)}"
                         " (the reports keep the settings they were made "
                         "with)")
        return _main_merge(args)
    if args.task == "retrieval":
        if (args.transfer_size is not None or args.no_variants
                or args.dataset != "ml-100k"):
            parser.error("--transfer-size, --no-variants and --dataset "
                         "apply to --task ctr only. Received: "
                         f"--transfer-size {args.transfer_size}, "
                         f"--no-variants {args.no_variants}, --dataset "
                         f"{args.dataset}")
        return _main_retrieval(args)
    recipe, data, student = _dataset(args)
    report = run_quality_bench(
        seeds=args.seeds,
        ensemble_size=(recipe.teachers if args.ensemble_size is None
                       else args.ensemble_size),
        recipe=recipe, data=data,
        transfer_size=(recipe.transfer_size if args.transfer_size is None
                       else args.transfer_size),
        json_path=args.json,
        variants=not args.no_variants,
        student=student,
    )
    print(table(report), file=sys.stderr)
    return 0


def _dataset(args):
    """The recipe, data and student of `--dataset`."""
    from tfkd import datasets
    from tfkd import models
    from tfkd import recipes

    if args.dataset == "ml-100k":
        return (recipes.Recipe().replace(epochs=args.epochs,
                                         patience=args.patience), None, None)
    recipe = recipes.Recipe.movielens_1m().replace(epochs=args.epochs,
                                                   patience=args.patience)
    data = datasets.movielens_1m(task="ctr", seed=SPLIT_SEED,
                                 batch_size=recipe.batch_size)
    return recipe, data, lambda spec: models.student(spec, **ML_1M_STUDENT)


def _main_retrieval(args):
    from tfkd.bench import retrieval_quality

    settings = retrieval_quality.RetrievalSettings().replace(
        epochs=args.epochs, patience=args.patience,
        ensemble_size=args.ensemble_size)
    report = retrieval_quality.run_retrieval_quality_bench(
        seeds=args.seeds, settings=settings, json_path=args.json)
    print(retrieval_quality.table(report), file=sys.stderr)
    return 0


def _main_merge(args):
    from tfkd.bench import quality_merge
    from tfkd.bench import retrieval_quality

    merged = quality_merge.merge_reports(
        [bench_utils.read_json(path) for path in args.merge])
    bench_utils.write_json(merged, args.json)
    tables = {"ctr": table, "retrieval": retrieval_quality.table}
    print(tables[quality_merge.task_of(merged)](merged), file=sys.stderr)
    return 0


def _parser():
    from tfkd import recipes
    from tfkd.bench.retrieval_quality import RetrievalSettings

    parser = argparse.ArgumentParser(
        prog="tfkd bench --quality",
        description="Distillation ablation on MovieLens-100K over seeds: "
        "teachers, their ensemble, scratch and distilled students. "
        "--task ctr (default): test AUC mean ± sd and gap recovery; "
        "--task retrieval: two-tower HR@10 / NDCG@10 (100 sampled "
        "negatives and full catalogue) and the distilled / scratch "
        "NDCG@10 ratio. JSON report.",
    )
    parser.add_argument("--task", choices=("ctr", "retrieval"),
                        default="ctr")
    parser.add_argument("--dataset", choices=("ml-100k", "ml-1m"),
                        default="ml-100k",
                        help="ctr only: MovieLens-100K (default) or -1M "
                        "(RecBole's ml-1m context protocol, "
                        "Recipe.movielens_1m, a 2-wide student)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        default=list(DEFAULT_SEEDS))
    parser.add_argument("--ensemble-size", type=int, default=None,
                        help="teachers per seed (default: 5 for ctr, 3 "
                        "on ml-1m, "
                        f"{RetrievalSettings.ensemble_size} for retrieval)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum epochs per model; ctr rows "
                        "without the transfer set get as many steps "
                        "(default: "
                        f"{recipes.Recipe.epochs} for ctr, "
                        f"{RetrievalSettings.epochs} for retrieval)")
    parser.add_argument("--patience", type=int, default=None,
                        help="early-stopping patience of every model "
                        f"(default: {recipes.Recipe.patience} for ctr, "
                        f"{RetrievalSettings.patience} for retrieval)")
    parser.add_argument("--transfer-size", type=float, default=None,
                        help="ctr only: transfer rows per training row "
                        "(default 5)")
    parser.add_argument("--no-variants", action="store_true",
                        help="ctr only: train the teachers, the scratch "
                        "and the default-recipe student, not the variants")
    parser.add_argument("--merge", nargs="+", metavar="REPORT",
                        help="instead of training, merge the JSON reports "
                        "of other seeds (e.g. run in parallel) into one")
    parser.add_argument("--json", default="-",
                        help="output file (default: stdout)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
