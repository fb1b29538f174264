"""Merges `tfkd bench --quality` reports of different seeds into one.

A seed of the quality bench takes most of an hour on a CPU and seeds do not
depend on each other, so they can run as separate processes (or machines):

```
tfkd bench --quality --seeds 0 --json q0.json   # and 1, 2 alongside
tfkd bench --quality --merge q0.json q1.json q2.json --json q.json
```

The merged report is the one `--seeds 0 1 2` would have written: each
seed's rows are read back from the `*_per_seed` lists and summarised again
by the task's own `summarise`, so means, sds, gap recovery (ctr) and the
choice of `student_distilled` on mean validation NDCG@10 (retrieval) are
computed once, the same way. Reports made with different settings are
refused rather than averaged.
"""

from collections.abc import Sequence
from typing import Any

from tfkd.bench import quality_report

PER_SEED = "_per_seed"
# Settings that may differ between the reports: the seeds themselves.
PER_REPORT = ("seeds",)


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from quality-bench reports of disjoint seeds.

    Args:
        reports: sequence of dicts, as `run_quality_bench` or
            `run_retrieval_quality_bench` return (or wrote as JSON), all of
            one task and with equal `settings` but for their seeds.

    Returns:
        dict: the task's `summarise` over all the seeds, in the order
        given, with `settings` (seeds concatenated) and `wall_seconds`
        (the sum: compute time, not elapsed time).

    Raises:
        ValueError: on fewer than two reports, a report that is not a
            quality-bench report, different tasks, rows or settings, or a
            seed in more than one report.

    Example:

    ```python
    merged = merge_reports([run_quality_bench(seeds=[s]) for s in (0, 1)])
    merged["gap_recovery"]["per_seed"]  # two values
    ```
    """
    reports = list(reports)
    if len(reports) < 2:
        raise ValueError("Merging needs at least two reports. Received: "
                         f"{len(reports)}")
    tasks = [task_of(report, i) for i, report in enumerate(reports)]
    if len(set(tasks)) != 1:
        raise ValueError(f"The reports are of different tasks: {tasks}. "
                         "Merge ctr and retrieval reports separately.")
    _check_settings(reports)
    seeds = [seed for report in reports for seed in report["settings"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(
            f"A seed appears in more than one report: {seeds}. Each seed "
            "must be trained once; drop the report that repeats it.")
    runs = [run for report in reports for run in _runs(report)]
    summarise = _summarise(tasks[0])
    merged = summarise(runs, seeds)
    merged["settings"] = dict(reports[0]["settings"], seeds=seeds)
    merged["wall_seconds"] = sum(r.get("wall_seconds", 0.0) for r in reports)
    return merged


def task_of(report: dict[str, Any], index: int = 0) -> str:
    """`"ctr"` or `"retrieval"`: which bench wrote `report`.

    Args:
        report: dict, a quality-bench report.
        index: int. Its position, for the error message. Defaults to `0`.

    Returns:
        str.

    Raises:
        ValueError: if `report` is not a quality-bench report.

    Example: `task_of(bench_utils.read_json("q.json"))`.
    """
    if "ndcg_ratio" in report:
        return "retrieval"
    if "gap_recovery" in report:
        return "ctr"
    raise ValueError(
        f"Report {index} is not a `tfkd bench --quality` report: it has "
        f"neither `gap_recovery` nor `ndcg_ratio`. Keys: {sorted(report)}")


def _check_settings(reports):
    def shared(report):
        return {k: v for k, v in report["settings"].items()
                if k not in PER_REPORT}

    first = shared(reports[0])
    for i, report in enumerate(reports[1:], start=1):
        other = shared(report)
        differ = sorted(k for k in first.keys() | other.keys()
                        if first.get(k) != other.get(k))
        if differ:
            raise ValueError(
                f"Report {i} was made with other settings than report 0 "
                f"({', '.join(differ)}): {[first.get(k) for k in differ]} "
                f"vs {[other.get(k) for k in differ]}. Only reports of "
                "the same recipe can be merged.")
    names = [sorted(_rows_by_run_name(report)) for report in reports]
    if any(n != names[0] for n in names):
        raise ValueError(
            f"The reports have different rows: {names}. Merge reports made "
            "with the same flags (--no-variants leaves the variants out).")


def _rows_by_run_name(report):
    """Every row of `report` under the name `run_seed` gave it."""
    rows = dict(report["variants"])
    method = report.get("distilled_method")
    for name in quality_report.MAIN_ROWS:
        # Retrieval renamed its best `kd_*` row: undo it, so the merged
        # seeds choose the best method again over all of them.
        rows[method if name == "student_distilled" and method else name] = (
            report[name])
    return rows


def _runs(report):
    """The per-seed rows (`run_seed`'s return) the report was made from."""
    rows = _rows_by_run_name(report)
    count = len(report["settings"]["seeds"])
    return [{name: _seed_row(row, i) for name, row in rows.items()}
            for i in range(count)]


def _seed_row(row, index):
    seed_row = {key[:-len(PER_SEED)]: values[index]
                for key, values in row.items() if key.endswith(PER_SEED)}
    seed_row.update(params=row["params"], recipe=row["recipe"])
    return seed_row


def _summarise(task):
    if task == "retrieval":
        from tfkd.bench import retrieval_quality

        return retrieval_quality.summarise
    return quality_report.summarise
