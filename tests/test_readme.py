"""The README's example runs as written (on the real data)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    proc = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "student.tflite").stat().st_size > 0
    assert "metric_after" in proc.stdout


ROWS = {  # the README's demo table: row label -> key in docs/results/demo.json
    "teacher (DCN-v2, member 1)": "teacher",
    "ensemble of 2 teachers": "teacher_ensemble",
    "student from scratch": "student_scratch",
    "student distilled": "student_distilled",
    "distilled student, int8 LiteRT": "student_int8_tflite",
}


def test_demo_table_is_the_committed_report():
    # A figure in the README comes from the report committed beside it.
    import json

    report = json.loads((README.parent / "docs" / "results" /
                         "demo.json").read_text())
    quality = report["compression"]["quality"]
    text = README.read_text()
    section = text[text.index("## What `make demo` measures"):]
    section = section[:section.index("\n## ", 1)]
    found = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in ROWS:
            found[ROWS[cells[0]]] = cells
    assert sorted(found) == sorted(ROWS.values())
    for key, (_, auc, logloss, params, size) in found.items():
        figures = report["tflite_int8"] if key.endswith("tflite") else \
            report[key]
        assert auc == f"{figures['auc']:.4f}", key
        if key in quality:
            assert logloss == f"{quality[key]['logloss']:.4f}", key
        elif logloss:
            assert logloss == f"{figures['logloss']:.4f}", key
        if params:
            assert params == f"{figures['params']:,}", key
        assert size == f"{figures['bytes']:,}", key
    recovery = f"closes {report['gap_recovery']:.2f} of the gap"
    assert recovery in " ".join(section.split())
