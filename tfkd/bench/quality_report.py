"""The CTR quality bench's report: its rows summarised over seeds, and
its table.

Apart from `tfkd.bench.quality`, which trains the rows, so that
`tfkd.bench.quality_merge` can summarise reports of several seeds again
without importing the bench that made them.
"""

import math
from typing import Any

from tfkd.bench import utils as bench_utils
from tfkd.evaluation.ranking_metrics import gap_recovery

MAIN_ROWS = ("teacher", "teacher_ensemble", "student_scratch",
             "student_distilled")


def summarise(runs: list[dict[str, dict]], seeds: list[int]) -> dict:
    """The report from the rows of each seed (`quality_rows.run_seed`).

    Args:
        runs: list of dict, one per seed: row name to `auc`, `val_auc`,
            `params`, `epochs`, `seconds`, `recipe`.
        seeds: list of int. The seed of each run.

    Returns:
        dict: the main rows, `variants`, `gap_recovery` and `size_ratio`.

    Example:

    ```python
    summarise([{"teacher": {"auc": 0.86, ...}, ...}], [0])
    ```
    """
    rows = {name: _row([run[name] for run in runs], seeds)
            for name in runs[0]}
    report: dict[str, Any] = {name: rows.pop(name) for name in MAIN_ROWS}
    report["variants"] = rows
    per_seed = [
        gap_recovery(run["student_distilled"]["auc"],
                     run["student_scratch"]["auc"],
                     run["teacher_ensemble"]["auc"])
        for run in runs
    ]
    report["gap_recovery"] = {
        "mean": bench_utils.mean(per_seed),
        "std": bench_utils.sample_std(per_seed),
        "per_seed": per_seed,
    }
    report["size_ratio"] = (report["student_distilled"]["params"]
                            / report["teacher"]["params"])
    return report


def _row(results, seeds):
    aucs = [float(r["auc"]) for r in results]
    vals = [float(r["val_auc"]) for r in results]
    return {
        "auc_mean": bench_utils.mean(aucs),
        "auc_std": bench_utils.sample_std(aucs),
        "auc_per_seed": aucs,
        "val_auc_mean": bench_utils.mean(vals),
        "val_auc_per_seed": vals,
        "params": int(results[0]["params"]),
        "seeds": list(seeds),
        "epochs_per_seed": [int(r["epochs"]) for r in results],
        "best_epoch_per_seed": [int(r["best_epoch"]) for r in results],
        "seconds_per_seed": [float(r["seconds"]) for r in results],
        "recipe": results[0]["recipe"],
    }


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one line per row, mean ± sd.

    Args:
        report: dict from `run_quality_bench`.

    Returns:
        str.

    Example:

    ```python
    print(table(run_quality_bench(seeds=[0])))
    ```
    """
    lines = ["| row | params | test AUC | val AUC | recipe |",
             "|---|---|---|---|---|"]
    rows = {name: report[name] for name in MAIN_ROWS}
    rows.update(report["variants"])
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['params']:,} | {row['auc_mean']:.4f} ± "
            f"{row['auc_std']:.4f} | {row['val_auc_mean']:.4f} | "
            f"{row['recipe']} |"
        )
    gap = report["gap_recovery"]
    mean = "n/a" if gap["mean"] is None else f"{gap['mean']:.2f}"
    lines.append(f"\ngap recovery {mean} ± {gap['std']:.2f} (per seed "
                 f"{_fmt(gap['per_seed'])}), size ratio "
                 f"{report['size_ratio']:.3f}")
    return "\n".join(lines)


def _fmt(values):
    return ", ".join("n/a" if v is None or not math.isfinite(v)
                     else f"{v:.2f}" for v in values)
