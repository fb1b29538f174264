"""`steps_per_execution` beside the standard speed-bench paths.

Times the student alone and the tfkd Distiller with Keras running
`--steps` batches per compiled call, in the same interleaved rounds as
`tfkd bench --speed`. On a GPU, Keras' `fit` on NumPy arrays pays a host
round trip per call; packing several batches into one call is the
public-API lever users have.

Run (any backend; on a machine without TensorFlow use JAX):

    KERAS_BACKEND=jax python tools/speed_variants.py --steps 32 \
        --rounds 5 --json speed_variants.json
"""

import argparse
import sys

import keras

from tfkd import bench_utils
from tfkd import speed_bench
from tfkd import speed_bench_paths as paths


def _student_path(steps):
    def make(setup):
        student = paths.new_student(setup)
        student.compile(
            optimizer="adam",
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            steps_per_execution=steps,
        )
        return paths.fit_runner(student, setup.feed)

    return make


def _online_path(steps):
    def make(setup):
        from tfkd.distiller import Distiller

        distiller = Distiller(setup.teacher, paths.new_student(setup))
        distiller.compile(
            optimizer="adam",
            alpha=setup.settings.alpha,
            temperature=setup.settings.temperature,
            steps_per_execution=steps,
        )
        return paths.fit_runner(distiller, setup.feed)

    return make


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--json", default="-")
    args = parser.parse_args(argv)
    settings = speed_bench.SpeedSettings(
        backend=keras.backend.backend(),
        rounds=args.rounds,
        batch_size=args.batch_size,
    )
    report = speed_bench.run_speed_bench(
        settings,
        extra_paths={
            f"student_spe{args.steps}": _student_path(args.steps),
            f"online_spe{args.steps}": _online_path(args.steps),
        },
    )
    bench_utils.write_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
