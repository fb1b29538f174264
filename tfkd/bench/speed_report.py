"""The speed bench's figures: per-path summaries, ratios and goals.

Pure functions of the measured examples per second, so they are tested
with literal numbers.
"""

import statistics

# Targets from issue 14; reported as met or not, never asserted in tests.
GOALS = {
    "online_vs_keras": 1.0,
    "online_vs_limit": 0.95,
    "offline_vs_student": 0.9,
}


def summarize(rates, error=None, cpu_rates=None):
    """Median, min and max of one path's per-round rates.

    Args:
        rates: list of float. Examples per second of wall time, one per
            round.
        error: str or None. Why the path failed.
        cpu_rates: list of float or None. Examples per second of CPU
            time, one per round.

    Returns:
        dict with `examples_per_sec` (median), `min`, `max`, `rounds`,
        `examples_per_cpu_sec` (median, or None) and `error`; just
        `error` when it failed.

    Example:

    >>> summarize([3.0, 1.0, 2.0])["examples_per_sec"]
    2.0
    """
    if error is not None or not rates:
        return {"error": error or "no timed round"}
    cpu_rates = [r for r in cpu_rates or () if r is not None]
    return {
        "examples_per_sec": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rounds": list(rates),
        "examples_per_cpu_sec": (
            statistics.median(cpu_rates) if cpu_rates else None
        ),
        "error": None,
    }


_RATIO_INPUTS = (
    "student", "online", "offline", "keras", "teacher_forward", "reference"
)


def throughput_ratios(
    student=None,
    online=None,
    offline=None,
    keras=None,
    teacher_forward=None,
    reference=None,
):
    """The bench's ratios from median examples per second.

    ```
    limit              = 1 / (1 / student + 1 / teacher_forward)
    online_vs_keras    = online / keras
    online_vs_limit    = online / limit
    offline_vs_student = offline / student
    ```

    `limit` is the rate of a step that costs exactly the student's
    training step plus the teacher's forward pass. A ratio whose inputs
    are missing (a failed path) is `None`. With a `reference` (the JAX
    hand-written loop), `online_vs_reference` and `keras_vs_reference` are
    added.

    Args:
        student, online, offline, keras, teacher_forward, reference: float
            or None. Median examples per second of each path.

    Returns:
        dict of ratio name to float or None.

    Example:

    >>> throughput_ratios(100.0, 30.0, 90.0, 40.0, 50.0)["limit"]
    33.333333333333336
    """
    limit = None
    if student and teacher_forward:
        limit = 1.0 / (1.0 / student + 1.0 / teacher_forward)
    ratios = {
        "limit": limit,
        "online_vs_keras": _ratio(online, keras),
        "online_vs_limit": _ratio(online, limit),
        "offline_vs_student": _ratio(offline, student),
    }
    if reference is not None:
        ratios["online_vs_reference"] = _ratio(online, reference)
        ratios["keras_vs_reference"] = _ratio(keras, reference)
    return ratios


def paired_ratios(rates):
    """`throughput_ratios` per round, then the median of each ratio.

    Paths timed in the same round ran minutes apart at most, so a ratio
    taken within a round cancels slow drifts of background load that the
    ratio of two medians keeps.

    Args:
        rates: dict of path name to per-round examples per second (lists
            of equal length; a failed path may be empty).

    Returns:
        dict of ratio name to the median over rounds, or None.

    Example:

    >>> paired_ratios({"online": [2.0, 6.0], "keras": [4.0, 4.0]})[
    ...     "online_vs_keras"]
    1.0
    """
    count = max((len(r) for r in rates.values()), default=0)
    per_round = [
        throughput_ratios(**{
            name: values[i] if i < len(values) else None
            for name, values in rates.items()
            if name in _RATIO_INPUTS
        })
        for i in range(count)
    ]
    paired = {}
    reference = 1.0 if rates.get("reference") else None
    for name in throughput_ratios(reference=reference):
        values = [r[name] for r in per_round if r.get(name) is not None]
        paired[name] = statistics.median(values) if values else None
    return paired


def _ratio(numerator, denominator):
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def goal_report(ratios):
    """Each goal of `GOALS` with its value, target and whether it is met.

    Args:
        ratios: dict from `throughput_ratios`.

    Returns:
        dict of goal name to `{"value", "target", "met"}`; `met` is `None`
        when the value could not be measured.
    """
    report = {}
    for name, target in GOALS.items():
        value = ratios.get(name)
        report[name] = {
            "value": value,
            "target": f">= {target}",
            "met": None if value is None else value >= target,
        }
    return report




def summary(report):
    """A few lines a person reads: each path's rate, then each goal."""
    lines = [f"backend {report['backend']}, {report['settings']['rows']:,} "
             "examples per epoch, median of "
             f"{report['settings']['rounds']} rounds"]
    for name, entry in report["paths"].items():
        rate = entry.get("examples_per_sec")
        shown = f"{rate:12,.0f} ex/s" if rate else f"error: {entry['error']}"
        lines.append(f"  {name:<18} {shown}")
    for name, goal in report["goals"].items():
        value = "n/a" if goal["value"] is None else f"{goal['value']:.3f}"
        met = {True: "met", False: "NOT met", None: "not measured"}[
            goal["met"]]
        lines.append(f"  {name:<18} {value:>7} ({goal['target']}): {met}")
    return "\n".join(lines)


