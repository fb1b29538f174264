"""Distillation throughput, side by side: `tfkd bench --speed`.

One run trains the same models on the same data at the same batch size
along every path below and reports examples per second:

- `student`: the student alone, `student.compile(...)` then `fit`.
- `online`: `tfkd.Distiller` with the live teacher.
- `offline`: `tfkd.Distiller` with `tfkd.teachers.CachedLogits`, on data
  that carries the teacher's logits, computed once.
- `keras`: `keras.distillation.Distiller` with `LogitsDistillation`.
- `offline_custom_loss`: the student alone on the same cached logits, the
  Distiller's loss given to `compile` as a custom Keras loss.
- `teacher_forward`: the teacher's forward pass alone, compiled over the
  whole epoch.
- `reference` (JAX only): a hand-written `jax.jit` distillation step.

Every path trains once untimed (tracing and compilation), then each is
timed once per round, rounds interleaved so background load hits all of
them alike; medians are quoted. A path that fails is reported with its
error, never crashes the run. This module imports neither TensorFlow nor
Keras until a backend is chosen: `python -m tfkd.bench.speed --backend
jax` runs where TensorFlow is not installed.
"""

import argparse
import dataclasses
import importlib
import os
import subprocess
import sys
import time

from tfkd._internal.arguments import validate_positive_int
from tfkd.bench import speed_report as report_module
from tfkd.bench import speed_sizes as speed_bench_sizes
from tfkd.bench import utils as bench_utils

BACKENDS = ("tensorflow", "jax")
DATA_SOURCES = ("movielens", "synthetic")
PATHS = ("student", "online", "offline", "keras", "teacher_forward")
_BACKEND_MODULES = {
    "tensorflow": "tfkd.bench.speed_tf",
    "jax": "tfkd.bench.speed_jax",
}


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    """What one speed bench run measures.

    Args:
        backend: str. `"tensorflow"` or `"jax"`; Keras must run on it.
            Defaults to `"tensorflow"`.
        rounds: int. Timed epochs per path. Defaults to `5`.
        batch_size: int or None. `None` is the size's: 1024 for `"demo"`,
            65536 for `"large"`. Defaults to `None`.
        rows: int or None. Examples per epoch; `None` uses the whole
            training set `repeat` times (`"large"`: 8,388,608 drawn
            rows). Defaults to `None`.
        repeat: int. Copies of the training set per epoch. Defaults to `4`
            (about 233K rows of MovieLens-100K CTR).
        data: str or None. `"movielens"` (ML-100K CTR train) or
            `"synthetic"` (random ids, NumPy only). `None` picks movielens
            on TensorFlow at the demo size, else synthetic.
        size: str. `"demo"` (the demo's teacher and student) or `"large"`
            (18.7M-parameter teacher, 2.2M student, 180K users x 100K
            items; synthetic only): `tfkd.bench.speed_sizes`. Defaults to
            `"demo"`.
        alpha: float. Hard-label weight of every distillation path.
            Defaults to `0.1`.
        temperature: float. Defaults to `3.0`.
        seed: int. Model initialisation and synthetic data. Defaults to
            `0`.

    Raises:
        TypeError: on a non-integer count.
        ValueError: on an unknown backend or data source, a count < 1,
            `alpha` outside [0, 1] or `temperature <= 0`.

    Example:

    ```python
    tiny = SpeedSettings(rows=2048, batch_size=512, rounds=1)
    ```
    """

    backend: str = "tensorflow"
    rounds: int = 5
    batch_size: int | None = None
    rows: int | None = None
    repeat: int = 4
    data: str | None = None
    alpha: float = 0.1
    temperature: float = 3.0
    seed: int = 0
    size: str = "demo"

    def __post_init__(self):
        _check_choice("backend", self.backend, BACKENDS)
        size = speed_bench_sizes.preset(self.size)
        defaults = {"batch_size": size.batch_size, "rows": size.rows,
                    "data": "movielens" if self.backend == "tensorflow"
                    and "movielens" in size.data else "synthetic"}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in ("rounds", "batch_size", "repeat"):
            validate_positive_int(name, getattr(self, name))
        if self.rows is not None:
            validate_positive_int("rows", self.rows)
        _check_choice("data", self.data, DATA_SOURCES)
        if self.data not in size.data:
            raise ValueError(
                f"The {self.size!r} size has no {self.data} data: it "
                f"trains on {' or '.join(size.data)} (--synthetic). "
                f"Received: data={self.data!r}, size={self.size!r}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(
                f"`alpha` must be in [0, 1]. Received: alpha={self.alpha}"
            )
        if not self.temperature > 0.0:
            raise ValueError(
                "`temperature` must be > 0. "
                f"Received: temperature={self.temperature}"
            )


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {choices}. Received: {name}={value!r}"
        )


def run_speed_bench(settings=None, extra_paths=None):
    """Measures training throughput of every path, interleaved.

    Args:
        settings: `SpeedSettings` or None. Defaults to `SpeedSettings()`.
        extra_paths: dict or None. More paths to time beside the standard
            ones, e.g. a variant of the Distiller to A/B: name to a
            callable `make(setup)` that returns a zero-argument callable
            running one epoch and returning its seconds. `setup` is the
            backend's `SpeedSetup`. Defaults to `None`.

    Returns:
        dict, JSON-serializable: `backend`, `settings` (with the actual
        `rows` and `steps_per_epoch`), `machine`, `versions`, `paths`
        (per path: `examples_per_sec` median, `min`, `max`, the per-round
        figures and `error`, or only `error` for a path that failed),
        `descriptions`, `ratios` (of the medians), `ratios_paired` (the
        median of each round's ratio), `ratios_cpu` (of the medians of
        examples per CPU-second: work done, which other processes on a
        shared machine disturb least; on an accelerator only the host's
        share) and `goals` (on `ratios`).

    Raises:
        ValueError: if Keras runs on another backend than
            `settings.backend`.

    Example:

    ```python
    report = run_speed_bench(SpeedSettings(rounds=3))
    print(report["ratios"]["online_vs_keras"])
    ```
    """
    settings = settings or SpeedSettings()
    _check_keras_backend(settings.backend)
    backend = importlib.import_module(_BACKEND_MODULES[settings.backend])
    load_before = bench_utils.load_average()
    setup = backend.prepare(settings)
    makers = {**setup.paths, **(extra_paths or {})}
    makers = {name: _bind(make, setup) for name, make in makers.items()}
    rates, cpu_rates, errors = time_paths(
        makers, settings.rounds, setup.rows
    )
    paths = {
        name: report_module.summarize(
            rates[name], errors.get(name), cpu_rates[name]
        )
        for name in makers
    }
    medians = {
        name: entry.get("examples_per_sec") for name, entry in paths.items()
    }
    ratios = report_module.throughput_ratios(
        **{name: medians.get(name) for name in PATHS},
        reference=medians.get("reference"),
    )
    return {
        "backend": settings.backend,
        "settings": {
            **dataclasses.asdict(settings),
            "rows": setup.rows,
            "steps_per_epoch": -(-setup.rows // settings.batch_size),
            "optimizer": "adam",
        },
        "machine": {
            **bench_utils.machine(),
            "devices": setup.devices,
            "load_average_before": load_before,
            "load_average_after": bench_utils.load_average(),
        },
        "versions": bench_utils.package_versions(setup.packages),
        "paths": paths,
        "descriptions": setup.descriptions,
        "ratios": ratios,
        "ratios_paired": report_module.paired_ratios(rates),
        "ratios_cpu": report_module.throughput_ratios(**{
            name: entry.get("examples_per_cpu_sec")
            for name, entry in paths.items()
            if name in (*PATHS, "reference")
        }),
        "goals": report_module.goal_report(ratios),
    }


def _bind(make, setup):
    return lambda: make(setup)


def time_paths(makers, rounds, rows):
    """Builds and warms up every path, then times one epoch per round.

    Args:
        makers: dict of name to a zero-argument callable that builds the
            path and returns its epoch runner (which returns seconds).
        rounds: int. Timed epochs per path.
        rows: int. Examples per epoch.

    Returns:
        `(rates, cpu_rates, errors)`: examples per second of wall time
        and per second of this process's CPU time, per round for each
        path, and `"Type: message"` for each path that failed.
    """
    runners, errors = {}, {}
    for name, make in makers.items():
        try:
            runner = make()
            runner()  # warm-up: tracing and compilation stay untimed
            runners[name] = runner
        # Any failure is a result to report, not a reason to stop the run.
        except Exception as error:  # noqa: BLE001
            errors[name] = _describe(error)
    rates = {name: [] for name in makers}
    cpu_rates = {name: [] for name in makers}
    order = list(runners)
    for round_index in range(rounds):
        # Rotate so no path always runs first (or right after a heavy one).
        shift = round_index % max(len(order), 1)
        for name in order[shift:] + order[:shift]:
            if name in errors:
                continue
            try:
                cpu_start = time.process_time()
                rates[name].append(rows / runners[name]())
                cpu = time.process_time() - cpu_start
                cpu_rates[name].append(rows / cpu if cpu > 0 else None)
            except Exception as error:  # noqa: BLE001
                errors[name] = _describe(error)
    return rates, cpu_rates, errors


def _describe(error):
    return " ".join(f"{type(error).__name__}: {error}".split())[:500]


def _check_keras_backend(backend):
    import keras

    if keras.backend.backend() != backend:
        raise ValueError(
            f"The speed bench for backend {backend!r} needs Keras on that "
            f"backend. Received: Keras backend "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND={backend} "
            "before Keras is imported, or run `python -m tfkd.bench.speed "
            f"--backend {backend}`, which does it for you."
        )


def _keras_backend_or_none():
    try:
        import keras

        return keras.backend.backend()
    except ImportError:
        return None


def add_arguments(parser):
    """Adds the speed bench's options to an argparse parser.

    Shared by `python -m tfkd.bench.speed` and `tfkd bench --speed`.

    Args:
        parser: `argparse.ArgumentParser`.
    """
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend (default: KERAS_BACKEND, else "
                        "tensorflow)")
    parser.add_argument("--rows", type=int, default=None,
                        help="examples per epoch (default: ML-100K CTR "
                        "train x 4)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: 1024, or 65536 at --size large")
    parser.add_argument("--synthetic", action="store_true",
                        help="random ids of ML-100K's shape instead of "
                        "ML-100K (the default on jax)")
    parser.add_argument("--size", choices=speed_bench_sizes.SIZES,
                        default="demo", help="large: 18.7M teacher, 2.2M "
                        "student, batch 65536, for an accelerator")


def settings_from_args(args):
    """`SpeedSettings` from parsed `add_arguments` options (+ `rounds`)."""
    backend = args.backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    return SpeedSettings(
        backend=backend,
        rounds=args.rounds,
        batch_size=args.batch_size,
        rows=args.rows,
        data="synthetic" if args.synthetic else None,
        size=args.size,
    )


def run_from_args(args):
    """Runs the bench for parsed options and writes `args.json`.

    Keras picks its backend once, on import. When it already runs on
    another backend (or cannot load), the bench re-runs itself in a child
    process with `KERAS_BACKEND` set, so `--backend jax` is enough.

    Args:
        args: `argparse.Namespace` with `add_arguments`' options, `rounds`
            and `json`.

    Returns:
        int exit status.
    """
    settings = settings_from_args(args)
    if (
        _keras_backend_or_none() != settings.backend
        and os.environ.get("KERAS_BACKEND") != settings.backend
    ):
        return _run_child(settings, args.json)
    start = time.perf_counter()
    report = run_speed_bench(settings)
    bench_utils.write_json(report, args.json)
    print(f"speed bench: {time.perf_counter() - start:.0f} s",
          file=sys.stderr)
    if args.json not in (None, "-"):
        print(report_module.summary(report))
    return 0


def _run_child(settings, json_path):
    command = [
        sys.executable, "-m", "tfkd.bench.speed",
        "--backend", settings.backend,
        "--rounds", str(settings.rounds),
        "--batch-size", str(settings.batch_size),
        "--size", settings.size,
        "--json", json_path or "-",
    ]
    if settings.data == "synthetic":
        command.append("--synthetic")
    if settings.rows is not None:
        command += ["--rows", str(settings.rows)]
    env = {**os.environ, "KERAS_BACKEND": settings.backend}
    return subprocess.run(command, env=env, check=False).returncode


def main(argv=None):
    """`python -m tfkd.bench.speed`: see `add_arguments` for the options."""
    parser = argparse.ArgumentParser(
        prog="python -m tfkd.bench.speed", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default="-",
                        help="output file (default: stdout)")
    args = parser.parse_args(argv)
    try:
        settings_from_args(args)
    except (TypeError, ValueError) as error:
        parser.error(str(error))  # one line and exit status 2
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
