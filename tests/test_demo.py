"""The end-to-end pipeline: `tfkd demo`, `tfkd bench` and the notebook."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd import recipes
from tfkd.bench import export_bench as bench
from tfkd.cli import demo

ROOT = Path(__file__).resolve().parents[1]
MODEL_KEYS = ("auc", "logloss", "params", "bytes")


@pytest.fixture(scope="module")
def synthetic():
    return datasets.synthetic_movielens(
        num_users=120, num_items=150, num_ratings=3000, task="ctr", seed=3
    )


class TestRunDemo:
    def test_results_and_files_on_synthetic_data(self, synthetic, tmp_path):
        results = demo.run_demo(
            recipes.Recipe(epochs=2, teachers=2, transfer_size=1.0),
            data=synthetic,
            json_path=tmp_path / "r.json",
            plots_dir=tmp_path / "plots",
            export_dir=tmp_path / "export",
            verbose=0,
        )
        written = json.loads((tmp_path / "r.json").read_text())
        for name in demo.MODEL_ROWS:
            assert set(MODEL_KEYS) <= set(written[name])
            assert 0.5 < written[name]["auc"] <= 1.0
        assert written["student_distilled"]["params"] <= 0.05 * (
            written["teacher"]["params"]
        )
        assert written["teacher_ensemble"]["params"] == (
            2 * written["teacher"]["params"])
        # Read against the ensemble, the best teacher.
        assert written["gap_recovery"] == pytest.approx(
            (written["student_distilled"]["auc"]
             - written["student_scratch"]["auc"])
            / (written["teacher_ensemble"]["auc"]
               - written["student_scratch"]["auc"]))
        assert written["config"]["teachers"] == 2
        int8 = written["tflite_int8"]
        assert int8["bytes"] == os.path.getsize(
            tmp_path / "export" / "student_int8.tflite"
        )
        assert int8["latency_us_p50"] > 0
        assert abs(int8["auc"] - results["student_distilled"]["auc"]) < 0.02
        for png in results["plots"].values():
            assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        table = demo.summary_table(results)
        assert "student_distilled" in table and "student_int8_tflite" in table
        self._check_compression(written, int8)

    def _check_compression(self, written, int8):
        """The compression report's figures follow from the rows above."""
        report = written["compression"]
        teacher = written["teacher"]
        assert report["teacher_bytes"] == teacher["bytes"]
        assert report["ensemble_params"] == 2 * teacher["params"]
        assert report["compression_ratio"] == pytest.approx(
            teacher["bytes"] / int8["bytes"])
        assert report["speedup"] == pytest.approx(
            report["teacher_keras_us_p50"] / report["int8_invoke_us_p50"])
        quality = report["quality"]
        # The int8 AUC read from its logits on LiteRT is the exporter's.
        assert quality["student_int8_tflite"]["auc"] == pytest.approx(
            int8["auc"], abs=1e-6)
        assert quality["teacher"]["logloss"] == teacher["logloss"]
        drop = report["drop"]["student_distilled_to_student_int8_tflite"]
        assert drop["auc"] == pytest.approx(
            written["student_distilled"]["auc"] - int8["auc"], abs=1e-6)
        lines = demo.compression_lines(report)
        assert "smaller than the float32 teacher" in lines
        assert "fixed shape as an app runs it" in lines
        # The headline latency is the app's path, the other is labelled.
        assert int8["latency_us_p50_resizing_runner"] > 0


@pytest.mark.slow
class TestDemoCommand:
    def test_quick_demo_on_movielens(self, tmp_path):
        """`tfkd demo --quick` on the real data, as `make demo` runs it."""
        out = tmp_path / "demo.json"
        proc = subprocess.run(
            [sys.executable, "-m", "tfkd.cli.main", "demo", "--quick",
             "--quiet",
             "--json", str(out), "--plots", str(tmp_path / "plots"),
             "--export-dir", str(tmp_path / "export")],
            capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "student_distilled" in proc.stdout
        results = json.loads(out.read_text())
        assert results["dataset"]["name"] == "movielens-100k"
        assert results["dataset"]["train"] == 58283
        assert "of the gap" in proc.stdout
        assert "Compression: the int8 student file is" in proc.stdout
        for name in demo.MODEL_ROWS:
            # Published MovieLens CTR AUCs are 0.80-0.90; a broken pipeline
            # scores near 0.5.
            assert results[name]["auc"] > 0.78
        assert results["tflite_int8"]["bytes"] > 0


@pytest.fixture(scope="module")
def distilled_pair(synthetic):
    student = models.student(synthetic.spec)
    teacher = models.teacher(synthetic.spec)
    config = recipes.Recipe(epochs=1, teachers=1, transfer_size=0)
    recipes.train_supervised(teacher, synthetic, config, verbose=0)
    recipes.train_distilled(teacher, student, synthetic, config, verbose=0)
    return student, teacher


class TestBench:
    def test_report_shape_and_goals(self, synthetic, distilled_pair,
                                    tmp_path):
        student, teacher = distilled_pair
        report = bench.run_bench(
            student, synthetic, teacher=teacher, workdir=str(tmp_path),
            rounds=1, runs_per_round=5,
        )
        json.dumps(report)  # JSON-serializable
        for name in ("float32", "dynamic", "float16", "int8"):
            entry = report[name]
            assert entry["bytes"] == os.path.getsize(
                tmp_path / f"student_{name}.tflite"
            )
            catalogue = f"latency_us_p50_catalogue_{len(synthetic.items)}_items"
            for timed in (entry, entry["fixed_shape"]):
                assert timed["latency_us_p50"] > 0
                assert timed["latency_us_p50_100_candidates"] > 0
                assert timed[catalogue] > 0
            assert entry["graph_bytes"] > 0
            assert (entry["constant_bytes"] + entry["graph_bytes"]
                    == entry["bytes"])
        assert report["float32"]["size_ratio_to_float32"] == 1.0
        # int8 stores each float32 weight in a quarter of the space (plus
        # int32 biases and scales): the constants must shrink about 4x.
        assert 0.24 < report["int8"]["constant_ratio_to_float32"] < 0.30
        assert report["keras"]["latency_us_p50"] > 0
        teacher_sizes = report["teacher"]
        assert teacher_sizes["params"] == evaluation.count_params(teacher)
        assert teacher_sizes["int8"]["bytes"] == os.path.getsize(
            tmp_path / "teacher_int8.tflite"
        )
        assert set(report["goals"]) == {
            "int8_size_ratio", "int8_constant_ratio",
            "teacher_int8_size_ratio", "int8_auc_drop",
        }
        for goal in report["goals"].values():
            assert goal["met"] == (
                goal["value"] <= float(goal["target"].split()[-1])
            )


    def test_compression_reports_qat_and_pruned_int8(
        self, synthetic, distilled_pair, tmp_path
    ):
        student, teacher = distilled_pair
        report = bench.run_bench(
            student, synthetic, teacher=teacher, workdir=str(tmp_path),
            rounds=1, runs_per_round=2, compression=True,
        )
        json.dumps(report)
        for name in ("qat_int8", "pruned_int8"):
            entry = report[name]
            assert entry["bytes"] == os.path.getsize(
                tmp_path / f"student_{name}.tflite"
            )
            assert 0.5 < entry["auc"] <= 1.0
            assert entry["size_ratio_to_float32"] < 1.0
        assert report["pruned_int8"]["sparsity"] >= 0.45
        # Pruning's zeros do not shrink the flatbuffer; they compress.
        assert (report["pruned_int8"]["gzip_bytes"]
                < report["pruned_int8"]["bytes"])

    def test_compression_needs_the_teacher(self, synthetic, distilled_pair):
        student, _ = distilled_pair
        with pytest.raises(ValueError, match="pass `teacher=`"):
            bench.run_bench(student, synthetic, compression=True)


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TFKD_QUICK", "1")
    notebook = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", 4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [
        out for cell in notebook.cells if cell.cell_type == "code"
        for out in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2


def test_cli_defaults_are_the_recipe():
    # One recipe: flags the user leaves out keep `Recipe`'s values.
    from tfkd.cli import main as cli

    parser = cli.build_parser()
    args = parser.parse_args(["distill"])
    assert cli._recipe(args, recipes.Recipe()) == recipes.Recipe()
    args = parser.parse_args(["distill", "--alpha", "0.5"])
    assert cli._recipe(args, recipes.Recipe()) == recipes.Recipe(alpha=0.5)
    args = parser.parse_args(["demo", "--quick", "--seed", "3"])
    assert cli._recipe(args, recipes.Recipe.quick()) == recipes.Recipe(
        epochs=1, seed=3, teachers=2, transfer_size=1.0
    )
    args = parser.parse_args(["distill", "--teachers", "1",
                              "--transfer-size", "0"])
    assert cli._recipe(args, recipes.Recipe()) == recipes.Recipe(
        teachers=1, transfer_size=0.0)
