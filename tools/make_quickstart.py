"""Writes notebooks/quickstart.ipynb (run after editing the cells here)."""

import nbformat
from nbformat.v4 import new_code_cell
from nbformat.v4 import new_markdown_cell
from nbformat.v4 import new_notebook

cells = [
    new_markdown_cell(
        "# tfkd quickstart: distil a CTR recommender on MovieLens-100K\n\n"
        "A large DCN-v2 teacher, a student with under 5% of its parameters "
        "trained from scratch, and the same student distilled from the "
        "teacher with `tfkd.Distiller`; then an int8 LiteRT export checked "
        "on the LiteRT interpreter.\n\n"
        "Set `TFKD_QUICK=1` for a one-epoch run (the test suite does)."
    ),
    new_code_cell(
        "import os\n"
        "import tempfile\n\n"
        "import keras\n"
        "from IPython.display import Image\n\n"
        "import tfkd\n\n"
        "QUICK = os.environ.get('TFKD_QUICK') == '1'\n"
        "EPOCHS = 1 if QUICK else 20\n"
        "# Students sit on a validation-AUC plateau for epochs 2-7 before\n"
        "# climbing; a patience of 1 stops them there.\n"
        "PATIENCE = 5\n"
        "OUT = tempfile.mkdtemp(prefix='tfkd-quickstart-') if QUICK "
        "else 'artifacts'\n"
        "keras.utils.set_random_seed(42)"
    ),
    new_markdown_cell(
        "## Data\n\nRatings 4–5 are clicks, 1–2 are not, 3 is dropped; a "
        "seeded random 80/10/10 split. Features are integer ids (0 = "
        "unknown)."
    ),
    new_code_cell(
        "data = tfkd.datasets.movielens_100k(task='ctr', split='random', "
        "seed=42)\n"
        "print({k: len(v) for k, v in data.frames.items()})\n"
        "data.spec.vocabulary_sizes"
    ),
    new_markdown_cell("## Teacher and scratch student"),
    new_code_cell(
        "def fit_on_labels(model):\n"
        "    model.compile(\n"
        "        optimizer=keras.optimizers.Adam(2e-3),\n"
        "        loss=keras.losses.BinaryCrossentropy(from_logits=True),\n"
        "        metrics=[keras.metrics.AUC(from_logits=True, name='auc')],\n"
        "    )\n"
        "    stop = keras.callbacks.EarlyStopping(\n"
        "        'val_auc', mode='max', patience=PATIENCE, "
        "restore_best_weights=True)\n"
        "    history = model.fit(data.train, validation_data=data.val,\n"
        "                        epochs=EPOCHS, callbacks=[stop], "
        "shuffle=False)\n"
        "    return history\n\n"
        "teacher = tfkd.models.teacher(data.spec)\n"
        "teacher_history = fit_on_labels(teacher)\n"
        "scratch = tfkd.models.student(data.spec)\n"
        "scratch_history = fit_on_labels(scratch)"
    ),
    new_markdown_cell(
        "## Distillation\n\n`loss = alpha * BCE(y, s) + (1 - alpha) * T² * "
        "KL(sigmoid(t/T) || sigmoid(s/T))`"
    ),
    new_code_cell(
        "student = tfkd.models.student(data.spec)\n"
        "distiller = tfkd.Distiller(teacher=teacher, student=student)\n"
        "distiller.compile(\n"
        "    optimizer=keras.optimizers.Adam(2e-3),\n"
        "    metrics=[keras.metrics.AUC(from_logits=True, name='auc')],\n"
        "    alpha=0.2,\n"
        "    temperature=2.0,\n"
        ")\n"
        "stop = keras.callbacks.EarlyStopping(\n"
        "    'val_auc', mode='max', patience=PATIENCE,\n"
        "    restore_best_weights=True)\n"
        "distill_history = distiller.fit(\n"
        "    data.train, validation_data=data.val, epochs=EPOCHS,\n"
        "    callbacks=[stop], shuffle=False)"
    ),
    new_markdown_cell("## Results on the test split"),
    new_code_cell(
        "ev = tfkd.evaluation\n"
        "results = {\n"
        "    name: {**ev.evaluate_ctr(model, data.test),\n"
        "           'params': ev.count_params(model),\n"
        "           'bytes': ev.model_bytes(model)}\n"
        "    for name, model in [('teacher', teacher),\n"
        "                        ('student_scratch', scratch),\n"
        "                        ('student_distilled', student)]\n"
        "}\n"
        "print(ev.comparison_table(results))"
    ),
    new_code_cell(
        "curves = ev.plot_learning_curves(\n"
        "    {'teacher': teacher_history, 'student_scratch': "
        "scratch_history,\n"
        "     'student_distilled': distill_history},\n"
        "    os.path.join(OUT, 'learning_curves.png'), metric='auc')\n"
        "Image(curves)"
    ),
    new_markdown_cell(
        "## Ship it: int8 LiteRT\n\n`to_tflite` converts, runs the file "
        "on the LiteRT interpreter against the Keras model, and refuses "
        "to overwrite the previous file if AUC drops by more than 0.005."
    ),
    new_code_cell(
        "report = tfkd.export.to_tflite(\n"
        "    student, os.path.join(OUT, 'student_int8.tflite'),\n"
        "    quantization='int8', representative_data=data.train,\n"
        "    validation_data=data.test, feature_spec=data.spec)\n"
        "results['student_int8_tflite'] = {'auc': report.metric_after,\n"
        "                                  'bytes': report.bytes}\n"
        "print(ev.comparison_table(results))\n"
        "report.to_dict()"
    ),
    new_code_cell(
        "size = ev.plot_quality_vs_size(results, os.path.join(OUT, "
        "'quality_vs_size.png'))\n"
        "Image(size)"
    ),
    new_code_cell(
        "# What the app does: LiteRT only, named int32 inputs, one logit.\n"
        "runner = tfkd.export.LiteRTRunner(report.path)\n"
        "request = {name: [1] for name in runner.input_names}\n"
        "request['genres'] = [[1, 0, 0, 0, 0, 0]]\n"
        "runner(request)"
    ),
]

notebook = new_notebook(cells=cells)
notebook.metadata["kernelspec"] = {
    "name": "python3",
    "display_name": "Python 3",
    "language": "python",
}
nbformat.write(notebook, "notebooks/quickstart.ipynb")
