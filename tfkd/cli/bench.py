"""`tfkd bench`: the export bench, `--speed`, and the standalone benches.

`--scale`, `--quality` and `--retrieval` have flags of their own (which
would clash with `--speed`'s), so they come first and the rest of the
command line goes to their module's `main`.
"""

import importlib

from tfkd._internal import native_logs as _native_logs
from tfkd.cli.data import CommandError

# flag: (module with `main(argv)`, help, an example of its own flags)
STANDALONE = {
    "--scale": (
        "tfkd.bench.scale",
        "training from sharded files as rows grow: seconds, examples/s, "
        "peak RSS",
        "--rows N ...",
    ),
    "--quality": (
        "tfkd.bench.quality",
        "distillation ablation over seeds: teachers, ensemble, scratch "
        "and distilled students; CTR test AUC and gap recovery, or "
        "--task retrieval: HR@10 / NDCG@10 and the NDCG ratio",
        "--task ctr|retrieval --seeds N ...",
    ),
    "--retrieval": (
        "tfkd.bench.retrieval_catalogue",
        "on-device top-K over a synthetic 100K-item catalogue: bytes, "
        "fixed-shape invoke time and recall per quantization mode",
        "--items N ...",
    ),
}


def standalone_main(argv):
    """The `main` of a standalone bench when `argv` starts with one.

    Args:
        argv: list of str. The command line after `tfkd`.

    Returns:
        Its module's `main(argv)`, or None for any other command.
    """
    if len(argv) < 2 or argv[0] != "bench" or argv[1] not in STANDALONE:
        return None
    return importlib.import_module(STANDALONE[argv[1]][0]).main


def run(args):
    for flag, (_, _, example) in STANDALONE.items():
        if getattr(args, flag[2:]):
            raise CommandError(
                f"{flag} takes its own flags: put it first, "
                f"`tfkd bench {flag} [{example}]`."
            )
    if args.speed:
        return _bench_speed(args)
    from tfkd.bench import export_bench as bench

    student, teacher, data = bench.load_or_train(
        args.model, epochs=args.epochs
    )
    if args.qat and teacher is None:
        raise SystemExit(
            f"tfkd bench --qat distills from the teacher, and {args.model} "
            "holds a bare student: pass a saved Distiller (.keras) to "
            "--model, or leave --model out to train both."
        )
    # The converter and LiteRT write notices to fd 2, past Python (one
    # `fully_quantize: ...` per int8 file, the XNNPACK delegate's);
    # `run_bench` prints nothing of its own, so filtering it delays nothing.
    with _native_logs.native_logs_filtered():
        report = bench.run_bench(
            student, data, teacher=teacher, workdir=args.workdir,
            rounds=args.rounds, compression=args.qat,
        )
    bench.write_json(report, args.json)
    return 0


def _bench_speed(args):
    from tfkd.bench import speed as speed_bench

    if args.model or args.qat:
        raise CommandError(
            "--speed times training on fresh models (the demo's teacher "
            "and student); --model and --qat do not apply to it. Drop "
            "them, or drop --speed for the export bench."
        )
    return speed_bench.run_from_args(args)


def add_bench(sub):
    """Adds the `bench` subcommand to the `tfkd` parser."""
    from tfkd.bench import speed as speed_bench

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
    for flag, (_, text, _) in STANDALONE.items():
        bench.add_argument(flag, action="store_true",
                           help=f"{text}; first flag, with its own "
                           f"(tfkd bench {flag} --help)")
    bench.add_argument("--speed", action="store_true",
                       help="training throughput instead: student alone, "
                       "tfkd and Keras distillers, teacher forward "
                       "(docs/BENCHMARKS.md)")
    speed_bench.add_arguments(bench)
    bench.set_defaults(run=run)
