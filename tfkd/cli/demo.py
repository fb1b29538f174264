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

MODEL_ROWS = ("teacher", "teacher_ensemble", "student_scratch",
              "student_distilled")


def run_demo(
    config=None,
    data=None,
    json_path=None,
    plots_dir=None,
    export_dir="export",
    verbose=1,
):
    """Trains the teachers, a scratch and a distilled student; exports int8.

    The default recipe (`tfkd.recipes.Recipe`) is the best tfkd has
    measured (`tfkd bench --quality`): an ensemble of `config.teachers`
    DCN-v2 teachers, distilled with a transfer set `config.transfer_size`
    times the labelled rows whose logits are cached once.

    Args:
        config: `tfkd.recipes.Recipe` or None. Defaults to `Recipe()`.
        data: `tfkd.datasets.MovieLensData` or None. Defaults to real
            MovieLens-100K CTR with `config.split` and `config.seed`.
        json_path: str or None. Where to write the results as JSON.
        plots_dir: str or None. Folder for the learning-curve and
            quality-vs-size PNGs.
        export_dir: str or None. Folder for `student_int8.tflite` and its
            sidecar; `None` skips the export. Defaults to `"export"`.
        verbose: int. 0: silent; 1: one line per trained model on stderr;
            2: also Keras' line per epoch. Defaults to `1`.

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
    config = config or Recipe()
    keras.utils.set_random_seed(config.seed)
    if data is None:
        data = datasets.movielens_100k(
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
    results = {"dataset": _describe(data, config)}
    results.update(_scores(teacher, scratch, distilled, data))
    if export_dir is not None:
        results["tflite_int8"] = _export_int8(distilled, data, export_dir)
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
        "latency_us_p50": report.latency_us_p50,
        "max_abs_diff": report.max_abs_diff,
        "path": report.path,
    }


def _describe(data, config):
    frames = data.frames
    return {
        "name": "movielens-100k" if data.ground_truth is None else "synthetic",
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
