"""Writes notebooks/quickstart.ipynb; `--execute` also runs it and stores
its outputs (`make notebook`).

Usage:
    python tools/make_quickstart.py            # cells only, no outputs
    python tools/make_quickstart.py --execute  # cells and a real run's outputs

The notebook trains what `make demo` trains (`tfkd.recipes.Recipe.demo()`)
through the library's own calls, so its stored tables are the demo's
figures. `TFKD_QUICK=1` runs it at one epoch per model (the test suite
does, on the committed file).
"""

import argparse
import pathlib

import nbformat
from nbformat.v4 import new_code_cell
from nbformat.v4 import new_markdown_cell
from nbformat.v4 import new_notebook

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"

SETUP = """\
import os
import tempfile

import tfkd  # first: it imports TensorFlow without its start-up notices
import tfkd.recipes

import keras
from IPython.display import Image

QUICK = os.environ.get('TFKD_QUICK') == '1'
# What `make demo` runs; tfkd.recipes.Recipe() is the full recipe (five
# teachers, a 5x transfer set), about ten times longer.
recipe = tfkd.recipes.Recipe.quick() if QUICK else tfkd.recipes.Recipe.demo()
OUT = tempfile.mkdtemp(prefix='tfkd-quickstart-') if QUICK else 'artifacts'
recipe"""

DATA = """\
keras.utils.set_random_seed(recipe.seed)
data = tfkd.datasets.movielens_100k(task='ctr', split=recipe.split,
                                    seed=recipe.seed,
                                    batch_size=recipe.batch_size)
print({name: len(frame) for name, frame in data.frames.items()})
data.spec.vocabulary_sizes"""

TEACHERS = """\
teacher, teacher_histories = tfkd.recipes.train_teachers(
    lambda: tfkd.models.teacher(data.spec), data, recipe)
teacher"""

SCRATCH = """\
scratch, scratch_history = tfkd.recipes.train_supervised(
    tfkd.models.student(data.spec), data, recipe, label='student (scratch)')"""

DISTIL = """\
student, distill_history = tfkd.recipes.train_distilled(
    teacher, tfkd.models.student(data.spec), data, recipe)"""

RESULTS = """\
ev = tfkd.evaluation


def row(model):
    return {**ev.evaluate_ctr(model, data.test),
            'params': ev.count_params(model), 'bytes': ev.model_bytes(model)}


results = {'teacher': row(teacher.members[0]), 'teacher_ensemble': row(teacher),
           'student_scratch': row(scratch), 'student_distilled': row(student)}
print(ev.comparison_table(results))
recovery = ev.gap_recovery(results['student_distilled']['auc'],
                           results['student_scratch']['auc'],
                           results['teacher_ensemble']['auc'])
print(f'The distilled student closes {recovery:.2f} of the gap from the '
      'scratch student to the ensemble.')"""

CURVES = """\
curves = ev.plot_learning_curves(
    {'teacher': teacher_histories[0], 'student_scratch': scratch_history,
     'student_distilled': distill_history},
    os.path.join(OUT, 'learning_curves.png'), metric='auc')
Image(curves)"""

EXPORT = """\
report = tfkd.export.to_tflite(
    student, os.path.join(OUT, 'student_int8.tflite'),
    quantization='int8', representative_data=data.train,
    validation_data=data.test, feature_spec=data.spec)
results['student_int8_tflite'] = {'auc': report.metric_after,
                                  'bytes': report.bytes}
print(ev.comparison_table(results))
report.to_dict()"""

SIZE = """\
size = ev.plot_quality_vs_size(
    results, os.path.join(OUT, 'quality_vs_size.png'))
Image(size)"""

APP = """\
# What the app does: LiteRT only, named int32 inputs, one logit.
runner = tfkd.export.LiteRTRunner(report.path)
request = {name: [1] for name in runner.input_names}
request['genres'] = [[1, 0, 0, 0, 0, 0]]
runner(request)"""


def cells():
    """The notebook's cells, text and code in reading order."""
    return [
        new_markdown_cell(
            "# tfkd quickstart: distil a CTR recommender on MovieLens-100K\n\n"
            "Two DCN-v2 teachers averaged into an ensemble, a student with "
            "under 5% of one teacher's parameters trained from scratch, and "
            "the same student distilled from the ensemble with "
            "`tfkd.Distiller`; then an int8 LiteRT export checked on the "
            "LiteRT interpreter. Every model is trained the same fair way "
            "by `tfkd.recipes` (early stopping on validation AUC, best "
            "epoch restored): the recipe `make demo` runs.\n\n"
            "Set `TFKD_QUICK=1` for a one-epoch run (the test suite does)."
        ),
        new_code_cell(SETUP),
        new_markdown_cell(
            "## Data\n\nRatings 4–5 are clicks, 1–2 are not, 3 is dropped; "
            "a seeded random 80/10/10 split. Features are integer ids "
            "(0 = unknown)."
        ),
        new_code_cell(DATA),
        new_markdown_cell(
            "## Teachers\n\nEach from its own seed and shuffle; "
            "`tfkd.teachers.Ensemble` averages their logits."
        ),
        new_code_cell(TEACHERS),
        new_markdown_cell("## The student from scratch"),
        new_code_cell(SCRATCH),
        new_markdown_cell(
            "## Distillation\n\n`loss = alpha * BCE(y, s) + (1 - alpha) * "
            "T² * KL(sigmoid(t/T) || sigmoid(s/T))` on the labelled rows, "
            "plus a transfer set of unobserved user–item pairs that only "
            "the soft term trains on; the ensemble scores them once."
        ),
        new_code_cell(DISTIL),
        new_markdown_cell("## Results on the test split"),
        new_code_cell(RESULTS),
        new_code_cell(CURVES),
        new_markdown_cell(
            "## Ship it: int8 LiteRT\n\n`to_tflite` converts, runs the "
            "file on the LiteRT interpreter against the Keras model, and "
            "refuses to overwrite the previous file if AUC drops by more "
            "than 0.005."
        ),
        new_code_cell(EXPORT),
        new_code_cell(SIZE),
        new_code_cell(APP),
    ]


def build():
    notebook = new_notebook(cells=cells())
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


def execute(notebook):
    """Runs `notebook` in place from the repository root."""
    from nbclient import NotebookClient

    NotebookClient(
        notebook, timeout=1200, kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    for cell in notebook.cells:
        # Wall-clock stamps would make every regeneration a diff.
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _without_native_logs(cell.outputs)


def _without_native_logs(outputs):
    """The outputs less TensorFlow's and LiteRT's log lines.

    The converter's C++ notices and SavedModel's "Assets written" line
    are what `tfkd demo` filters from its terminal too
    (`native_logs.NATIVE_LOG_LINE`); the progress lines and any warning
    stay.
    """
    from tfkd._internal.native_logs import NATIVE_LOG_LINE

    kept = []
    for output in outputs:
        # "Assets written to" comes through absl on stdout, the
        # converter's notices on stderr.
        if output.output_type == "stream":
            lines = [line for line in output.text.splitlines(True)
                     if not NATIVE_LOG_LINE.match(line)
                     and not line.startswith("INFO:tensorflow:")]
            if not "".join(lines).strip():
                continue
            output.text = "".join(lines)
        kept.append(output)
    return kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true",
                        help="run the notebook and store its outputs")
    args = parser.parse_args(argv)
    notebook = build()
    if args.execute:
        execute(notebook)
    NOTEBOOK.parent.mkdir(exist_ok=True)
    nbformat.write(notebook, NOTEBOOK)
    print(f"{NOTEBOOK.relative_to(ROOT)} written"
          f"{' with its outputs' if args.execute else ''}")


if __name__ == "__main__":
    main()
