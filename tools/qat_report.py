"""Float vs PTQ-int8 vs QAT-int8 vs pruned-int8 on MovieLens-100K CTR.

Run as `.venv/bin/python tools/qat_report.py [--out-dir DIR]`. Trains the
teacher preset, distills the student preset with `tfkd.Distiller`, then
exports the student four ways and prints test AUC and bytes of each as a
table and as JSON (`--json PATH`).
"""

import argparse
import json
import os
import time

import keras
import numpy as np

from tfkd import evaluation
from tfkd.datasets import features_from_frame
from tfkd.datasets import movielens_100k
from tfkd.distillers.distiller import Distiller
from tfkd.export import pruning
from tfkd.export import qat
from tfkd.export.tflite_export import to_tflite
from tfkd.models import presets

ALPHA = 0.5
TEMPERATURE = 2.0


def train_models(data, teacher_epochs=2, student_epochs=3, verbose=0):
    """Trains the teacher preset, then distills the student preset.

    Args:
        data: `MovieLensData` with `task="ctr"`.
        teacher_epochs: int. Defaults to `2`.
        student_epochs: int. Defaults to `3`.
        verbose: int. Passed to `fit`. Defaults to `0`.

    Returns:
        `(teacher, student)` Keras 3 models.
    """
    teacher = presets.teacher(data.spec)
    teacher.compile(
        optimizer="adam",
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    # The pipeline shuffles; shuffle=False only silences Keras' warning.
    teacher.fit(data.train, epochs=teacher_epochs, verbose=verbose,
                shuffle=False)
    student = presets.student(data.spec)
    distiller = Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", alpha=ALPHA, temperature=TEMPERATURE)
    distiller.fit(data.train, epochs=student_epochs, verbose=verbose,
                  shuffle=False)
    return teacher, student


def compare(data, teacher, student, out_dir, qat_epochs=1, prune_epochs=2,
            target_sparsity=0.5):
    """Exports the student four ways; returns one row per variant.

    Args:
        data: `MovieLensData` (ctr).
        teacher: `keras.Model`. The teacher (soft targets).
        student: `keras.Model`. The distilled student.
        out_dir: str. Folder for the `.tflite` files (must exist).
        qat_epochs: int. Defaults to `1`.
        prune_epochs: int. Defaults to `2`.
        target_sparsity: float. Defaults to `0.5`.

    Returns:
        A list of dicts with `variant`, `auc`, `bytes`, `gzip_bytes`,
        `seconds`; the QAT and pruned rows add `model_auc`, the AUC of the
        fine-tuned tf_keras model before conversion (what `auc` should
        match).
    """
    rows = []
    test = features_from_frame(data.frames["test"], data.spec)
    labels = data.frames["test"][data.spec.label].to_numpy()

    def timed(variant, fn):
        start = time.perf_counter()
        row = fn()
        row.update(variant=variant, seconds=time.perf_counter() - start)
        rows.append(row)

    def float_row():
        scores = np.asarray(student.predict(test, verbose=0))
        auc = evaluation.auc(labels, scores)
        report = to_tflite(student, os.path.join(out_dir, "float.tflite"))
        return {"auc": auc, "bytes": report.bytes,
                "gzip_bytes": report.gzip_bytes}

    def ptq_row():
        report = to_tflite(
            student,
            os.path.join(out_dir, "ptq_int8.tflite"),
            quantization="int8",
            representative_data=data.train,
            validation_data=data.test,
            allow_metric_drop=True,
        )
        return {"auc": report.metric_after, "bytes": report.bytes,
                "gzip_bytes": report.gzip_bytes}

    def qat_row():
        report = qat.quantization_aware_finetune(
            student, teacher, data.train,
            os.path.join(out_dir, "qat_int8.tflite"),
            validation_data=data.test, epochs=qat_epochs,
            alpha=ALPHA, temperature=TEMPERATURE,
        )
        return {"auc": report.metric_after, "model_auc": report.metric_before,
                "bytes": report.bytes, "gzip_bytes": report.gzip_bytes}

    def prune_row():
        report = pruning.prune_finetune(
            student, teacher, data.train,
            os.path.join(out_dir, "pruned_int8.tflite"),
            validation_data=data.test, epochs=prune_epochs,
            target_sparsity=target_sparsity,
            alpha=ALPHA, temperature=TEMPERATURE,
        )
        return {"auc": report.metric_after, "model_auc": report.metric_before,
                "bytes": report.bytes, "gzip_bytes": report.gzip_bytes,
                "sparsity": report.sparsity}

    timed("float32 student", float_row)
    timed("PTQ int8", ptq_row)
    timed("QAT int8", qat_row)
    timed(f"pruned {target_sparsity:.0%} int8", prune_row)
    return rows


def format_table(rows):
    """Returns the rows as a fixed-width text table.

    `model AUC` is the fine-tuned tf_keras model's AUC before conversion
    (QAT and pruned rows only).
    """
    lines = [
        f"{'variant':<22}{'test AUC':>10}{'model AUC':>11}{'bytes':>10}"
        f"{'gzip':>10}"
    ]
    for row in rows:
        model_auc = row.get("model_auc")
        model_auc = "" if model_auc is None else f"{model_auc:.4f}"
        lines.append(
            f"{row['variant']:<22}{row['auc']:>10.4f}{model_auc:>11}"
            f"{row['bytes']:>10,}{row['gzip_bytes']:>10,}"
        )
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry point; returns the rows.

    Args:
        argv: list of str or None. Defaults to `sys.argv[1:]`.

    Returns:
        The list of row dicts that was printed.

    Example:

    ```
    .venv/bin/python tools/qat_report.py --out-dir /tmp/qat
    ```
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Under the git-ignored artifacts/, not the tracked export/ folder.
    parser.add_argument("--out-dir", default="artifacts/qat_report")
    parser.add_argument("--json", default=None, help="write rows here")
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--prune-epochs", type=int, default=2)
    parser.add_argument("--target-sparsity", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    start = time.perf_counter()
    data = movielens_100k(task="ctr")
    teacher, student = train_models(
        data, args.teacher_epochs, args.student_epochs
    )
    train_seconds = time.perf_counter() - start
    rows = compare(
        data, teacher, student, args.out_dir,
        qat_epochs=args.qat_epochs, prune_epochs=args.prune_epochs,
        target_sparsity=args.target_sparsity,
    )
    teacher_auc = evaluation.auc(
        data.frames["test"][data.spec.label].to_numpy(),
        np.asarray(teacher.predict(
            features_from_frame(data.frames["test"], data.spec), verbose=0
        )),
    )
    print(f"teacher test AUC {teacher_auc:.4f}; training "
          f"{train_seconds:.0f} s; total "
          f"{time.perf_counter() - start:.0f} s")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"teacher_auc": teacher_auc, "rows": rows}, f,
                      indent=2)
    return rows


if __name__ == "__main__":
    main()
