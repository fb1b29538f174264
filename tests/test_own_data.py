"""README's "Your own model and data": the walkthrough runs and prints
what the README shows, and the section's Python block runs.

`tools/own_data_walkthrough.sh` runs once per module (the file takes 30-40 s
on 2 CPU cores), in a temporary folder; the README shows a run in
`/tmp/own`.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from tfkd import datasets

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WALKTHROUGH = ROOT / "tools" / "own_data_walkthrough.sh"
RUN_TFLITE = ROOT / "export" / "run_tflite.py"
HEADING = "## Your own model and data"
# The work folder of the run whose output the README shows.
README_WORK = "/tmp/own"
STEPS = ("example", "distill", "export", "score")
FILES = ("clicks.csv", "teacher.keras", "requests.json", "spec.json",
         "student.keras", "student.tflite", "student.json")
# int8 may cost a little AUC; more than this is a broken export.
AUC_TOLERANCE = 0.01
# What changes from run to run or machine to machine: AUCs in the last
# digits, epochs run, seconds. Masked before README and output compare.
MASKS = (
    (r"\b0\.\d{4}\b( \(epoch \d+\))?", "#"),
    (r"\d+ epochs?", "# epochs"),
    (r", \d+ s$", ", # s"),
)


def readme_section():
    text = README.read_text()
    start = text.index(f"\n{HEADING}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def console_blocks():
    return re.findall(r"```console\n(.*?)```", readme_section(), re.S)


def split_steps(log):
    """`{step: output lines}` of a log whose commands start with `$ `."""
    chunks = re.split(r"^\$ ", log, flags=re.M)[1:]
    assert len(chunks) == len(STEPS), log
    steps = {}
    for step, chunk in zip(STEPS, chunks, strict=True):
        lines = chunk.splitlines()
        # A README command goes on over lines ending in a backslash.
        taken = 1
        while lines[taken - 1].endswith("\\"):
            taken += 1
        steps[step] = lines[taken:]
    return steps


def readme_steps():
    log = "".join(block for block in console_blocks() if "$ " in block)
    return split_steps(log)


def masked(lines, work=README_WORK):
    out = []
    for line in lines:
        line = line.replace(str(work), README_WORK)
        for pattern, replacement in MASKS:
            line = re.sub(pattern, replacement, line)
        out.append(line)
    return out


def pairwise_auc(labels, scores):
    # AUC = P(score of a positive > score of a negative), ties count 1/2.
    positive = scores[labels == 1][:, None]
    negative = scores[labels == 0][None, :]
    return float(np.mean((positive > negative)
                         + 0.5 * (positive == negative)))


def readme_json(lines):
    """The README's export report; it leaves lines out as `  ...`."""
    return json.loads("\n".join(x for x in lines if x.strip() != "..."))


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    work = tmp_path_factory.mktemp("own")
    env = dict(os.environ)
    env.pop("TFKD_DEBUG", None)
    bin_dir = str(Path(sys.executable).parent)
    env["PYTHON"] = sys.executable
    env["TFKD"] = shutil.which("tfkd", path=bin_dir) or "tfkd"
    proc = subprocess.run(
        ["bash", str(WALKTHROUGH), str(work)], env=env, capture_output=True,
        text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"work": work, "steps": split_steps(proc.stdout),
            "stderr": proc.stderr.splitlines()}


@pytest.mark.slow
class TestWalkthrough:
    def test_writes_every_file(self, walkthrough):
        for name in FILES:
            assert (walkthrough["work"] / name).stat().st_size > 0, name

    @pytest.mark.parametrize("step", ["example", "distill"])
    def test_prints_what_the_readme_shows(self, walkthrough, step):
        printed = walkthrough["steps"][step]
        if step == "distill":
            # Its progress line goes to stderr; the README shows both.
            printed = printed + [line for line in walkthrough["stderr"]
                                 if line.startswith("student (distilled")]
        assert sorted(masked(printed, walkthrough["work"])) == sorted(
            masked(readme_steps()[step])
        )

    def test_export_report_fields_match_the_readme(self, walkthrough):
        report = json.loads("\n".join(walkthrough["steps"]["export"]))
        shown = readme_json(readme_steps()["export"])
        for key, value in shown.items():
            if isinstance(value, (int, float)):
                assert isinstance(report[key], (int, float)), key
            else:
                expected = json.loads(json.dumps(value).replace(
                    README_WORK, str(walkthrough["work"])
                ))
                assert report[key] == expected, key
        assert report["quantization"] == "int8"
        for before_after in (report, shown):
            assert abs(before_after["metric_before"]
                       - before_after["metric_after"]) <= AUC_TOLERANCE

    def test_int8_auc_within_tolerance_of_keras(self, walkthrough):
        # Measured here, not taken from the report: the Keras student and
        # the .tflite file on the test split the export used.
        work = walkthrough["work"]
        spec = datasets.FeatureSpec.from_dict(
            json.loads((work / "spec.json").read_text())
        )
        test = datasets.from_files(work / "clicks.csv", spec=spec).frames[
            "test"
        ]
        features = datasets.features_from_frame(test, spec)
        student = keras.models.load_model(work / "student.keras")
        keras_scores = np.asarray(student.predict(features, verbose=0))
        # The file is fed the raw rows, as the app has them: text ids and
        # hours from 0, mapped by run_tflite.py with the sidecar's
        # vocabularies (the same rows, in from_files' split order).
        raw = pd.read_csv(work / "clicks.csv")
        order = np.random.default_rng(42).permutation(len(raw))
        raw = raw.iloc[order[len(raw) - len(test):]]
        litert_scores = _run_tflite_module().score(
            work / "student.tflite",
            {name: raw[name].tolist() for name in spec.names},
        )
        labels = test["clicked"].to_numpy()
        keras_auc = pairwise_auc(labels, keras_scores.reshape(-1))
        litert_auc = pairwise_auc(labels, litert_scores)
        report = json.loads("\n".join(walkthrough["steps"]["export"]))
        assert report["metric_before"] == pytest.approx(keras_auc, abs=1e-6)
        assert report["metric_after"] == pytest.approx(litert_auc, abs=1e-6)
        assert abs(keras_auc - litert_auc) <= AUC_TOLERANCE
        # Better than chance by a margin: the clicks can be learnt.
        assert keras_auc > 0.65

    def test_unseen_and_missing_users_score_alike(self, walkthrough):
        work = walkthrough["work"]
        requests = json.loads((work / "requests.json").read_text())
        spec = json.loads((work / "spec.json").read_text())
        users = {f["name"]: f for f in spec["features"]}["user"]
        known, missing, new = (r["user"] for r in requests)
        # Raw text ids: one training saw, none, one it never saw.
        assert missing is None
        assert known in users["vocabulary"]
        assert new not in users["vocabulary"]
        # One row's features, three users: only the user differs.
        rest = [{k: v for k, v in r.items() if k != "user"}
                for r in requests]
        assert rest == [rest[0]] * 3
        for printed in (walkthrough["steps"]["score"],
                        readme_steps()["score"]):
            logits = json.loads(printed[0])["logits"]
            assert logits[2] == logits[1]
            assert logits[0] != logits[1]
        sidecar = json.loads((work / "student.json").read_text())
        assert sidecar["unknown_ids"]["scored"] == "as id 0"
        assert "user" in sidecar["unknown_ids"]["checked_inputs"]


@pytest.mark.slow
def test_readme_python_block_runs(walkthrough):
    blocks = re.findall(r"```python\n(.*?)```", readme_section(), re.S)
    assert len(blocks) == 1
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]], cwd=walkthrough["work"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout.splitlines()
    shown = next(b for b in console_blocks() if "$ " not in b).splitlines()
    assert masked(printed) == masked(shown)
    before, after = map(float, re.findall(r"0\.\d{4}", printed[0]))
    assert abs(before - after) <= AUC_TOLERANCE
    # The hand-built student's plain Embeddings were made safe in the file,
    # each on its whole table: the vocabulary and the unknown row.
    spec = json.loads((walkthrough["work"] / "spec.json").read_text())
    sizes = {f["name"]: f.get("vocabulary_size") for f in spec["features"]}
    unknown_ids = ast.literal_eval(printed[1])
    assert unknown_ids["mapped_inputs"] == {
        name: sizes[name] for name in ("hour", "track", "user")
    }


def test_walkthrough_needs_a_work_folder():
    proc = subprocess.run(["bash", str(WALKTHROUGH)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert "usage: " in proc.stderr and "WORK" in proc.stderr
    assert proc.stdout == ""


def _run_tflite_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_tflite", RUN_TFLITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
