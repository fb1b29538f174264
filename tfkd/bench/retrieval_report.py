"""The retrieval quality report: rows over seeds, ratios, the table.

`summarise` turns the rows of each seed (`retrieval_quality.run_seed`)
into the report `tfkd bench --quality --task retrieval` writes; `table`
prints it.
"""

from typing import Any

from tfkd.bench import utils as bench_utils
from tfkd.bench.quality_report import MAIN_ROWS

MONITOR = "val_ndcg@10"
METRICS = ("hr@10", "ndcg@10", "full_hr@10", "full_ndcg@10", MONITOR)


def summarise(runs: list[dict[str, dict]], seeds: list[int]) -> dict:
    """The report from the rows of each seed (`run_seed`).

    The `kd_*` row with the best mean validation NDCG@10 becomes
    `student_distilled`; the other `kd_*` rows are the `variants`.

    Args:
        runs: list of dict, one per seed, as `run_seed` returns.
        seeds: list of int. The seed of each run.

    Returns:
        dict: the main rows, `variants`, `distilled_method`, `ndcg_ratio`,
        `gap_recovery` and `full_gap_recovery` (each `mean`, `std`,
        `per_seed`) and `size_ratio`.

    Example: `summarise([run_seed(data, RetrievalSettings(), 0)], [0])`.
    """
    rows = {name: _row([run[name] for run in runs], seeds)
            for name in runs[0]}
    methods = [name for name in rows if name.startswith("kd_")]
    best = max(methods, key=lambda name: rows[name][f"{MONITOR}_mean"])
    rows["student_distilled"] = rows.pop(best)
    report: dict[str, Any] = {name: rows.pop(name) for name in MAIN_ROWS}
    report["variants"] = rows
    report["distilled_method"] = best
    per_seed = [run[best]["ndcg@10"] / run["student_scratch"]["ndcg@10"]
                if run["student_scratch"]["ndcg@10"] > 0 else None
                for run in runs]
    report["ndcg_ratio"] = {"mean": bench_utils.mean(per_seed),
                            "std": bench_utils.sample_std(per_seed),
                            "per_seed": per_seed}
    for key, metric in (("gap_recovery", "ndcg@10"),
                        ("full_gap_recovery", "full_ndcg@10")):
        report[key] = _gap_recovery(runs, best, metric)
    report["size_ratio"] = (report["student_distilled"]["params"]
                            / report["teacher"]["params"])
    return report


def _gap_recovery(runs, best, metric):
    # The share of the scratch-to-ensemble gap the distilled row closes,
    # per seed; None where the ensemble is no better than scratch.
    per_seed = []
    for run in runs:
        scratch = run["student_scratch"][metric]
        gap = run["teacher_ensemble"][metric] - scratch
        per_seed.append((run[best][metric] - scratch) / gap if gap > 0
                        else None)
    return {"mean": bench_utils.mean(per_seed),
            "std": bench_utils.sample_std(per_seed), "per_seed": per_seed,
            "metric": metric}


def _row(results: list[dict], seeds: list[int]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in METRICS:
        values = [float(r[key]) for r in results]
        row.update({f"{key}_mean": bench_utils.mean(values),
                    f"{key}_std": bench_utils.sample_std(values),
                    f"{key}_per_seed": values})
    row.update(
        params=int(results[0]["params"]), seeds=list(seeds),
        epochs_per_seed=[int(r["epochs"]) for r in results],
        best_epoch_per_seed=[r["best_epoch"] for r in results],
        seconds_per_seed=[float(r["seconds"]) for r in results],
        recipe=results[0]["recipe"],
    )
    return row


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one line per row, mean ± sd.

    Args:
        report: dict from `run_retrieval_quality_bench`.
    """
    lines = ["| row | params | HR@10 | NDCG@10 | full HR@10 | "
             "full NDCG@10 | val NDCG@10 | recipe |",
             "|---|---|---|---|---|---|---|---|"]
    rows = {**{name: report[name] for name in MAIN_ROWS}, **report["variants"]}
    for name, row in rows.items():
        cells = [f"{row[f'{k}_mean']:.4f} ± {row[f'{k}_std']:.4f}"
                 for k in METRICS[:4]]
        lines.append(f"| {name} | {row['params']:,} | {' | '.join(cells)} "
                     f"| {row[f'{MONITOR}_mean']:.4f} | {row['recipe']} |")
    ratio = report["ndcg_ratio"]
    mean = "n/a" if ratio["mean"] is None else f"{ratio['mean']:.3f}"
    gap = report.get("gap_recovery") or {"mean": None}
    recovered = "n/a" if gap["mean"] is None else f"{gap['mean']:.2f}"
    lines.append(f"\nstudent_distilled = {report['distilled_method']}; "
                 f"NDCG@10 / scratch {mean} ± {ratio['std']:.3f}, gap "
                 f"recovery {recovered}, size ratio "
                 f"{report['size_ratio']:.3f}")
    return "\n".join(lines)
