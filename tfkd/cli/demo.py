"""The end-to-end demo: teacher, scratch student and distilled student on
MovieLens-100K CTR, then an int8 LiteRT export of the distilled student."""

import dataclasses
import os
import time

import keras

from tfkd import datasets
from tfkd import evaluation
from tfkd import export
from tfkd import models
from tfkd._internal import atomic_files
from tfkd._internal import native_logs as _native_logs
from tfkd.recipes import Recipe
from tfkd.recipes import train_distilled
from tfkd.recipes import train_supervised
from tfkd.recipes import train_teachers

# Timed calls per latency in the compression report.
LATENCY_RUNS = 200
MODEL_ROWS = ("teacher", "teacher_ensemble", "student_scratch",
              "student_distilled")


def run_demo(
    config=None,
    data=None,
    json_path=None,
    plots_dir=None,
    export_dir="export",
    verbose=1,
    dataset="ml-100k",
):
    """Trains the teachers, a scratch and a distilled student; exports int8.

    The default recipe (`tfkd.recipes.Recipe`) is the best tfkd has
    measured (`tfkd bench --quality`): an ensemble of `config.teachers`
    DCN-v2 teachers, distilled with a transfer set `config.transfer_size`
    times the labelled rows whose logits are cached once.

    Args:
        config: `tfkd.recipes.Recipe` or None. Defaults to
            `Recipe.demo()`, the recipe `make demo` runs.
        data: `tfkd.datasets.MovieLensData` or None. Defaults to real
            MovieLens CTR (`dataset`) with `config.split` and
            `config.seed`.
        json_path: str or None. Where to write the results as JSON.
        plots_dir: str or None. Folder for the learning-curve and
            quality-vs-size PNGs.
        export_dir: str or None. Folder for `student_int8.tflite` and its
            sidecar; `None` skips the export. Defaults to `"export"`.
        verbose: int. 0: silent; 1: one line per trained model on stderr;
            2: also Keras' line per epoch. Defaults to `1`.
        dataset: str. Without `data`: `"ml-100k"` or `"ml-1m"`.
            Defaults to `"ml-100k"`.

    Returns:
        dict with `"dataset"`, `"teacher"` (member 0 of an ensemble),
        `"teacher_ensemble"` (with more than one teacher),
        `"student_scratch"`, `"student_distilled"` (each `auc`, `logloss`,
        `params`, `bytes`), `"gap_recovery"` (against the ensemble),
        `"tflite_int8"` (`auc`, `bytes`, `latency_us_p50`) when exported,
        `"config"` and `"histories"`.

    Example:

    ```python
    results = tfkd.cli.demo.run_demo(tfkd.recipes.Recipe.quick())
    print(results["student_distilled"]["auc"])
    ```
    """
    config = config or Recipe.demo()
    keras.utils.set_random_seed(config.seed)
    named = data is None
    if data is None:
        loaders = {"ml-100k": datasets.movielens_100k,
                   "ml-1m": datasets.movielens_1m}
        data = loaders[dataset](
            task="ctr",
            split=config.split,
            seed=config.seed,
            batch_size=config.batch_size,
        )
    started = time.perf_counter()
    teacher, teacher_histories = train_teachers(
        lambda: models.teacher(data.spec), data, config, verbose
    )
    scratch, scratch_history = train_supervised(
        models.student(data.spec), data, config, verbose
    )
    distilled, distill_history = train_distilled(
        teacher, models.student(data.spec), data, config, verbose
    )
    results = {"dataset": _describe(data, config,
                                    dataset if named else None)}
    results.update(_scores(teacher, scratch, distilled, data))
    if export_dir is not None:
        results["tflite_int8"] = _export_int8(distilled, data, export_dir)
        results["compression"] = compression_report(teacher, results, data)
    results["train_seconds"] = round(time.perf_counter() - started, 1)
    results["config"] = dataclasses.asdict(config)
    histories = {
        "teacher": teacher_histories[0].history,
        "student_scratch": scratch_history.history,
        "student_distilled": distill_history.history,
    }
    results["histories"] = histories
    if plots_dir is not None:
        results["plots"] = _plot(results, histories, plots_dir)
    if json_path is not None:
        _write_json(results, json_path)
    return results


def _scores(teacher, scratch, distilled, data):
    """The rows of the table; with an ensemble, member 0 is "the teacher"
    and the gap recovery is read against the ensemble."""
    members = getattr(teacher, "members", None)
    rows = {"teacher": _score(members[0] if members else teacher, data)}
    if members:
        rows["teacher_ensemble"] = _score(teacher, data)
    rows["student_scratch"] = _score(scratch, data)
    rows["student_distilled"] = _score(distilled, data)
    best = rows.get("teacher_ensemble", rows["teacher"])
    rows["gap_recovery"] = evaluation.gap_recovery(
        rows["student_distilled"]["auc"], rows["student_scratch"]["auc"],
        best["auc"],
    )
    return rows


def _score(model, data):
    scores = evaluation.evaluate_ctr(model, data.test)
    return {
        "auc": scores["auc"],
        "logloss": scores["logloss"],
        "params": evaluation.count_params(model),
        "bytes": evaluation.model_bytes(model),
    }


def _export_int8(student, data, export_dir):
    os.makedirs(export_dir, exist_ok=True)
    with _native_logs.native_logs_filtered():
        report = export.to_tflite(
            student,
            os.path.join(export_dir, "student_int8.tflite"),
            quantization="int8",
            representative_data=data.train,
            validation_data=data.test,
            feature_spec=data.spec,
            # The demo reports the drop rather than refusing; `tfkd export`
            # refuses by default.
            allow_metric_drop=True,
        )
    return {
        "auc": report.metric_after,
        "auc_keras": report.metric_before,
        "bytes": report.bytes,
        # The app's path (tensors sized once) is the headline; the
        # signature runner resizes them on every call.
        "latency_us_p50": report.invoke_us_p50,
        "latency_us_p50_resizing_runner": report.latency_us_p50,
        "max_abs_diff": report.max_abs_diff,
        "path": report.path,
    }


def compression_report(teacher, results, data, runs=LATENCY_RUNS):
    """What the int8 student saves against the teacher, and what it costs.

    The speed-up compares what each side serves with: the teacher as a
    `tf.function` Keras call (the fastest Keras path in Python; eager is
    several times slower) and the int8 student as an app runs it on
    LiteRT (tensors sized once, then set and invoke), one request each.

    Args:
        teacher: the trained teacher (a `tfkd.teachers.Ensemble` or one
            model); member 0 is "the teacher".
        results: dict from `run_demo` with its `teacher`,
            `student_distilled` and `tflite_int8` rows.
        data: the demo's data (its test frame supplies the requests).
        runs: int. Timed calls per latency. Defaults to `LATENCY_RUNS`.

    Returns:
        dict: `compression_ratio` (float32 teacher bytes / int8 file
        bytes), `speedup` (teacher Keras p50 / int8 LiteRT p50),
        `teacher_keras_us_p50`, `int8_invoke_us_p50`, the `auc` and
        `logloss` of teacher, distilled student and int8 file, and the
        drops from one to the next.

    Example:

    ```python
    report = compression_report(teacher, results, data)
    print(f"{report['compression_ratio']:.0f}x smaller")
    ```
    """
    import numpy as np
    import tensorflow as tf

    int8 = results["tflite_int8"]
    member = (getattr(teacher, "members", None) or [teacher])[0]
    frame = data.frames["test"]
    request = datasets.features_from_frame(frame.iloc[:1], data.spec)
    served = tf.function(lambda x: member(x, training=False))
    teacher_us = _median_us(lambda: served(request), runs)
    runner = export.LiteRTRunner(int8["path"])
    invoke_us = runner.invoke_us_p50(request, runs)
    logits = runner(datasets.features_from_frame(frame, data.spec))
    logits = np.asarray(next(iter(logits.values()))).reshape(-1)
    labels = frame[data.spec.label].to_numpy()
    quality = {
        "teacher": _quality(results["teacher"]),
        "student_distilled": _quality(results["student_distilled"]),
        "student_int8_tflite": {
            "auc": evaluation.auc(labels, logits),
            "logloss": evaluation.logloss(labels, logits, from_logits=True),
        },
    }
    return {
        "teacher_params": results["teacher"]["params"],
        "teacher_bytes": results["teacher"]["bytes"],
        "ensemble_params": results.get("teacher_ensemble", {}).get("params"),
        "ensemble_bytes": results.get("teacher_ensemble", {}).get("bytes"),
        "student_params": results["student_distilled"]["params"],
        "student_int8_bytes": int8["bytes"],
        "compression_ratio": results["teacher"]["bytes"] / int8["bytes"],
        "teacher_keras_us_p50": teacher_us,
        "int8_invoke_us_p50": invoke_us,
        "speedup": teacher_us / invoke_us,
        "quality": quality,
        "drop": _drops(quality),
    }


def _quality(row):
    return {"auc": row["auc"], "logloss": row["logloss"]}


def _drops(quality):
    """AUC lost and logloss gained from each row to the next."""
    names = list(quality)
    return {
        f"{a}_to_{b}": {
            "auc": quality[a]["auc"] - quality[b]["auc"],
            "logloss": quality[b]["logloss"] - quality[a]["logloss"],
        }
        for a, b in zip(names[:-1], names[1:], strict=True)
    }


def _median_us(call, runs):
    for _ in range(10):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        timings.append(time.perf_counter_ns() - start)
    return sorted(timings)[len(timings) // 2] / 1e3


def compression_lines(compression):
    """The compression report as the lines the demo prints.

    Args:
        compression: dict from `compression_report`.

    Returns:
        str.
    """
    q, drop = compression["quality"], compression["drop"]
    return "\n".join([
        f"Compression: the int8 student file is "
        f"{compression['compression_ratio']:.0f}x smaller than the float32 "
        f"teacher ({compression['student_int8_bytes']:,} bytes against "
        f"{compression['teacher_bytes']:,}; "
        f"{compression['student_params']:,} parameters against "
        f"{compression['teacher_params']:,}).",
        f"Speed-up: {compression['speedup']:.0f}x per request "
        f"(teacher in Keras, tf.function: "
        f"{compression['teacher_keras_us_p50']:,.0f} us; int8 student on "
        f"LiteRT, fixed shape as an app runs it: "
        f"{compression['int8_invoke_us_p50']:,.1f} us; medians).",
        "Quality: test AUC teacher {:.4f} -> distilled {:.4f} -> int8 {:.4f};"
        " logloss {:.4f} -> {:.4f} -> {:.4f}.".format(
            q["teacher"]["auc"], q["student_distilled"]["auc"],
            q["student_int8_tflite"]["auc"], q["teacher"]["logloss"],
            q["student_distilled"]["logloss"],
            q["student_int8_tflite"]["logloss"]),
        "Drop from distilled to int8: AUC {:+.4f}, logloss {:+.4f}.".format(
            -drop["student_distilled_to_student_int8_tflite"]["auc"],
            drop["student_distilled_to_student_int8_tflite"]["logloss"]),
    ])


def _describe(data, config, name):
    frames = data.frames
    if name is None:
        name = "ml-100k" if data.ground_truth is None else "synthetic"
    return {
        "name": {"ml-100k": "movielens-100k",
                 "ml-1m": "movielens-1m"}.get(name, name),
        "task": "ctr",
        "split": config.split,
        "train": len(frames["train"]),
        "val": len(frames["val"]),
        "test": len(frames["test"]),
        "positive_rate": float(frames["train"][data.spec.label].mean()),
    }


def _plot(results, histories, plots_dir):
    os.makedirs(plots_dir, exist_ok=True)
    sizes = {name: results[name] for name in MODEL_ROWS if name in results}
    if "tflite_int8" in results:
        sizes["student_int8_tflite"] = results["tflite_int8"]
    return {
        "learning_curves": evaluation.plot_learning_curves(
            histories, os.path.join(plots_dir, "learning_curves.png"),
            metric="auc",
        ),
        "quality_vs_size": evaluation.plot_quality_vs_size(
            sizes, os.path.join(plots_dir, "quality_vs_size.png")
        ),
    }


def _write_json(results, path):
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    atomic_files.write_json(path, results)


def summary_table(results):
    """The comparison table printed at the end of the demo.

    Args:
        results: dict returned by `run_demo`.

    Returns:
        str.
    """
    rows = {
        name: {k: results[name][k] for k in ("auc", "logloss", "params",
                                              "bytes")}
        for name in MODEL_ROWS if name in results
    }
    if "tflite_int8" in results:
        int8 = results["tflite_int8"]
        rows["student_int8_tflite"] = {
            "auc": int8["auc"],
            "bytes": int8["bytes"],
            "latency_us_p50": int8["latency_us_p50"],
        }
    return evaluation.comparison_table(rows)
