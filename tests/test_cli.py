"""The `tfkd` command line: argument handling and `tfkd export`."""

import hashlib
import json

import keras
import pytest

from tfkd import Distiller
from tfkd import cli
from tfkd import datasets
from tfkd import export
from tfkd import models


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class TestParser:
    def test_help_lists_commands(self, capsys):
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        out = capsys.readouterr().out
        for command in ("demo", "distill", "export", "bench"):
            assert command in out

    def test_unknown_split_is_rejected(self, capsys):
        with pytest.raises(SystemExit):
            cli.main(["demo", "--split", "weekly"])
        assert "invalid choice" in capsys.readouterr().err


class _Spy:
    """Stands in for `tfkd.export.to_tflite` and records its arguments."""

    def __init__(self, error=None):
        self.calls = []
        self.error = error

    def __call__(self, model, path, **kwargs):
        self.calls.append(dict(kwargs, model=model, path=path))
        if self.error is not None:
            raise self.error
        return export.ExportReport(
            path=path, bytes=1, quantization="int8", max_abs_diff=0.0,
            metric="auc", metric_before=0.8, metric_after=0.8,
            latency_us_p50=1.0, sidecar_path=path + ".json",
        )


@pytest.fixture(scope="module")
def movielens():
    return datasets.movielens_100k(task="ctr")


@pytest.fixture(scope="module")
def distiller_file(movielens, tmp_path_factory):
    # A student trained for a few steps, saved inside a Distiller: what
    # `tfkd distill` writes. Any model of the same output shape can teach.
    keras.utils.set_random_seed(0)
    teacher = models.student(movielens.spec)
    student = models.student(movielens.spec)
    distiller = Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam")
    distiller.fit(movielens.train.take(20), epochs=1, verbose=0,
                  shuffle=False)
    path = str(tmp_path_factory.mktemp("models") / "distiller.keras")
    distiller.save(path)
    return path


class TestExportCommand:
    @pytest.mark.slow
    def test_writes_what_to_tflite_writes(
        self, movielens, distiller_file, tmp_path, capsys
    ):
        cli_path = str(tmp_path / "cli.tflite")
        status = cli.main([
            "export", distiller_file, cli_path, "--quantization", "dynamic",
            "--id-inputs", "user_id,item_id",
        ])
        assert status == 0
        printed = json.loads(capsys.readouterr().out)

        student = keras.models.load_model(distiller_file).student
        function_path = str(tmp_path / "function.tflite")
        report = export.to_tflite(
            student, function_path, quantization="dynamic",
            validation_data=movielens.test, feature_spec=movielens.spec,
            id_inputs=["user_id", "item_id"],
        )
        assert _sha256(cli_path) == _sha256(function_path)
        for key in ("bytes", "quantization", "metric", "metric_before",
                    "metric_after", "max_abs_diff"):
            assert printed[key] == report.to_dict()[key], key
        with open(cli_path[: -len(".tflite")] + ".json") as f:
            sidecar = json.load(f)
        assert sidecar["feature_spec"] == movielens.spec.to_dict()

    def test_flags_reach_to_tflite(self, monkeypatch, distiller_file,
                                   tmp_path, capsys):
        spy = _Spy()
        monkeypatch.setattr(export, "to_tflite", spy)
        status = cli.main([
            "export", distiller_file, str(tmp_path / "s.tflite"),
            "--quantization", "int8", "--max-metric-drop", "0.01",
            "--allow-metric-drop", "--calibration-batches", "7",
            "--id-inputs", "user_id,item_id", "--task", "ctr",
        ])
        assert status == 0
        (call,) = spy.calls
        assert call["quantization"] == "int8"
        assert call["representative_data"] is not None
        assert call["max_metric_drop"] == 0.01
        assert call["allow_metric_drop"] is True
        assert call["num_calibration_batches"] == 7
        assert call["id_inputs"] == ["user_id", "item_id"]
        assert call["output_kind"] == "logit"
        assert call["model"].name == "student"
        assert json.loads(capsys.readouterr().out)["bytes"] == 1

    def test_refusal_names_the_flags(self, monkeypatch, distiller_file,
                                     tmp_path, capsys):
        refusal = export.MetricDropError(
            "auc", 0.85, 0.84, 0.01, 0.005, "int8"
        )
        monkeypatch.setattr(export, "to_tflite", _Spy(error=refusal))
        status = cli.main(
            ["export", distiller_file, str(tmp_path / "s.tflite")]
        )
        assert status == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("tfkd export: error: auc dropped by")
        assert "--allow-metric-drop" in captured.err
        assert "--max-metric-drop" in captured.err

    def test_missing_model_is_one_line_error(self, tmp_path, capsys):
        output = tmp_path / "s.tflite"
        status = cli.main(
            ["export", str(tmp_path / "missing.keras"), str(output)]
        )
        assert status == 1
        err = capsys.readouterr().err
        assert err.startswith("tfkd export: error: ValueError: File not found")
        assert err.count("\n") == 1
        assert not output.exists()

    def test_debug_variable_shows_the_traceback(self, monkeypatch, tmp_path):
        monkeypatch.setenv("TFKD_DEBUG", "1")
        with pytest.raises(ValueError, match="File not found"):
            cli.main(["export", str(tmp_path / "missing.keras"),
                      str(tmp_path / "s.tflite")])


@pytest.mark.slow
def test_distill_then_export_int8(movielens, tmp_path, capsys):
    # The command-line pipeline an engineer runs: a saved teacher, one
    # epoch of distillation, then a full-int8 export checked on LiteRT.
    keras.utils.set_random_seed(0)
    teacher = models.student(movielens.spec)
    teacher.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    teacher.fit(movielens.train.take(50), epochs=1, verbose=0, shuffle=False)
    teacher_path = str(tmp_path / "teacher.keras")
    teacher.save(teacher_path)
    student_path = str(tmp_path / "student.keras")
    assert cli.main(["distill", "--teacher", teacher_path, "--epochs", "1",
                     "--output", student_path]) == 0
    capsys.readouterr()
    tflite_path = str(tmp_path / "student.tflite")
    assert cli.main(["export", student_path, tflite_path,
                     "--calibration-batches", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quantization"] == "int8"
    assert report["bytes"] == len(open(tflite_path, "rb").read())
    # One epoch on MovieLens already ranks well above chance.
    assert report["metric_after"] > 0.75
    assert report["metric_before"] - report["metric_after"] < 0.005
