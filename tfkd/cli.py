"""The `tfkd` command: `tfkd demo | distill | export | bench`."""

import argparse
import json
import os
import sys


def _demo(args):
    from tfkd import demo

    config = demo.DemoConfig.quick() if args.quick else demo.DemoConfig()
    overrides = {
        k: getattr(args, k)
        for k in ("epochs", "alpha", "temperature", "seed", "split")
        if getattr(args, k) is not None
    }
    config = demo.DemoConfig(**{**config.__dict__, **overrides})
    results = demo.run_demo(
        config,
        json_path=args.json,
        plots_dir=args.plots,
        export_dir=None if args.no_export else args.export_dir,
        verbose=0 if args.quiet else 1,
    )
    print()
    print(demo.summary_table(results))
    data = results["dataset"]
    print(
        f"\n{data['name']} CTR, {data['split']} split: {data['train']:,} "
        f"train / {data['val']:,} val / {data['test']:,} test ratings; "
        f"trained in {results['train_seconds']} s."
    )
    if args.json:
        print(f"Results: {args.json}")
    return 0


def _distill(args):
    from tfkd import demo

    config = demo.DemoConfig(
        epochs=args.epochs or demo.DemoConfig.epochs,
        alpha=0.2 if args.alpha is None else args.alpha,
        temperature=2.0 if args.temperature is None else args.temperature,
        seed=42 if args.seed is None else args.seed,
        split=args.split or "random",
    )
    from tfkd import datasets
    from tfkd import models

    data = datasets.movielens_100k(
        task="ctr", split=config.split, seed=config.seed
    )
    if args.teacher:
        import keras

        teacher = keras.models.load_model(args.teacher)
    else:
        teacher, _ = demo.train_supervised(
            models.teacher(data.spec), data, config
        )
    student, _ = demo.train_distilled(
        teacher, models.student(data.spec), data, config
    )
    _save_atomically(student, args.output)
    print(f"Student written to {args.output}")
    return 0


def _save_atomically(model, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f".{os.path.basename(path)}.tmp.keras")
    model.save(temp)
    os.replace(temp, path)


def _export(args):
    import keras

    from tfkd import datasets
    from tfkd import export

    model = keras.models.load_model(args.model)
    model = getattr(model, "student", model)
    data = datasets.movielens_100k(task=args.task)
    quantization = None if args.quantization == "none" else args.quantization
    report = export.to_tflite(
        model,
        args.output,
        quantization=quantization,
        representative_data=data.train if quantization == "int8" else None,
        validation_data=data.test,
        max_metric_drop=args.max_metric_drop,
        allow_metric_drop=args.allow_metric_drop,
        output_kind="logit" if args.task == "ctr" else "rating",
        feature_spec=data.spec,
    )
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _bench(args):
    from tfkd import bench

    student, teacher, data = bench.load_or_train(
        args.model, epochs=args.epochs
    )
    if args.qat and teacher is None:
        raise SystemExit(
            f"tfkd bench --qat distills from the teacher, and {args.model} "
            "holds a bare student: pass a saved Distiller (.keras) to "
            "--model, or leave --model out to train both."
        )
    report = bench.run_bench(
        student, data, teacher=teacher, workdir=args.workdir,
        rounds=args.rounds, compression=args.qat,
    )
    bench.write_json(report, args.json)
    return 0


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

    demo = sub.add_parser(
        "demo",
        help="teacher vs scratch vs distilled student on MovieLens-100K",
    )
    demo.add_argument("--quick", action="store_true",
                      help="one epoch per model (under 2 minutes)")
    demo.add_argument("--json", help="write the results to this JSON file")
    demo.add_argument("--plots", help="write PNG plots into this folder")
    demo.add_argument("--export-dir", default="export",
                      help="folder for student_int8.tflite (default: export)")
    demo.add_argument("--no-export", action="store_true",
                      help="skip the LiteRT export")
    demo.add_argument("--quiet", action="store_true",
                      help="no Keras progress bars")
    _training_arguments(demo)
    demo.set_defaults(run=_demo)

    distill = sub.add_parser(
        "distill", help="distil a student on MovieLens-100K CTR and save it"
    )
    distill.add_argument("--teacher", help="a trained teacher .keras file; "
                         "trained first when omitted")
    distill.add_argument("--output", default="student.keras")
    _training_arguments(distill)
    distill.set_defaults(run=_distill)

    exp = sub.add_parser("export", help="convert a .keras student to LiteRT")
    exp.add_argument("model", help="a .keras student (or Distiller)")
    exp.add_argument("output", help="destination .tflite")
    exp.add_argument("--quantization", default="int8",
                     choices=["none", "dynamic", "float16", "int8"])
    exp.add_argument("--task", default="ctr", choices=["ctr", "rating"])
    exp.add_argument("--max-metric-drop", type=float, default=0.005)
    exp.add_argument("--allow-metric-drop", action="store_true")
    exp.set_defaults(run=_export)

    bench = sub.add_parser("bench", help="sizes, AUC and latency as JSON")
    bench.add_argument("--model", help="a .keras Distiller (or bare "
                       "student); a pair is trained quickly when omitted")
    bench.add_argument("--json", default="-",
                       help="output file (default: stdout)")
    bench.add_argument("--workdir", help="folder for the .tflite files")
    bench.add_argument("--rounds", type=int, default=5)
    bench.add_argument("--epochs", type=int, default=2)
    bench.add_argument("--qat", action="store_true",
                       help="also quantization-aware training and 50%% "
                       "pruning (needs the teacher: no bare --model)")
    bench.set_defaults(run=_bench)
    return parser


def _training_arguments(parser):
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--split", choices=["random", "temporal"])


def main(argv=None):
    """Entry point of the `tfkd` console script.

    Args:
        argv: list of str or None. Defaults to `sys.argv[1:]`.

    Returns:
        int exit status.
    """
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
