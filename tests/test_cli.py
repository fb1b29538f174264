"""The `tfkd` command line: argument handling and `tfkd export`."""

import hashlib
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from test_tabular import clicks_frame

from tfkd import Distiller
from tfkd import datasets
from tfkd import export
from tfkd import models
from tfkd import recipes
from tfkd.cli import data as cli_data
from tfkd.cli import main as cli

RUN_TFLITE = pathlib.Path(__file__).parents[1] / "export" / "run_tflite.py"
# The columns the hand-built teacher reads (not `hour`).
TEACHER_INPUTS = ("uid", "track", "price")


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
            path=path, bytes=1, gzip_bytes=1, quantization="int8",
            max_abs_diff=0.0,
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
        # CTR models: to_tflite infers logit or probability from the head.
        assert call["output_kind"] is None
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
    # No transfer set: with 5x unlabelled rows, one epoch copies this
    # 50-batch teacher (test AUC 0.69) instead of learning the labels.
    assert cli.main(["distill", "--teacher", teacher_path, "--epochs", "1",
                     "--transfer-size", "0", "--output", student_path]) == 0
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


def _one_line_error(capsys, command="distill"):
    err = capsys.readouterr().err
    assert err.startswith(f"tfkd {command}: error: "), err
    assert err.count("\n") == 1, err
    return err


class TestNumericFlags:
    @pytest.mark.parametrize(
        "argv, message",
        [
            (["distill", "--alpha", "7"],
             "argument --alpha: must be in [0, 1], got 7"),
            (["distill", "--epochs", "-3"],
             "argument --epochs: must be >= 1, got -3"),
            (["demo", "--temperature", "0"],
             "argument --temperature: must be >= 0.05, got 0"),
            (["export", "m.keras", "o.tflite", "--calibration-batches", "0"],
             "argument --calibration-batches: must be >= 1, got 0"),
            (["export", "m.keras", "o.tflite", "--max-metric-drop", "-1"],
             "argument --max-metric-drop: must be >= 0, got -1"),
            (["distill", "--alpha", "nan"],
             "argument --alpha: expected a number, got 'nan'"),
            (["distill", "--epochs", "2.5"],
             "argument --epochs: expected an integer, got '2.5'"),
            (["demo", "--batch-size", "0"],
             "argument --batch-size: must be >= 1, got 0"),
        ],
        ids=["alpha", "epochs", "temperature", "calibration_batches",
             "max_metric_drop", "nan", "float_epochs", "batch_size"],
    )
    def test_bad_number_exits_2_with_usage(self, argv, message, capsys):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("usage: tfkd ")
        assert message in err


def hand_built_teacher():
    """A user's own teacher: plain Embedding tables, dict inputs by name."""
    inputs = {
        "uid": keras.Input((), dtype="int32", name="uid"),
        "track": keras.Input((), dtype="int32", name="track"),
        "price": keras.Input((), dtype="float32", name="price"),
    }
    x = keras.layers.Concatenate()([
        keras.layers.Embedding(140, 8)(inputs["uid"]),
        keras.layers.Embedding(57, 8)(inputs["track"]),
        keras.layers.Reshape((1,))(inputs["price"]),
    ])
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x), name="my_teacher")


@pytest.fixture(scope="module")
def clicks_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("clicks") / "clicks.csv"
    clicks_frame().to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def teacher_file(clicks_csv, tmp_path_factory):
    keras.utils.set_random_seed(0)
    data = datasets.from_files(clicks_csv, label="clicked")
    teacher = hand_built_teacher()
    teacher.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))

    def teacher_columns(features, labels):
        return {k: features[k] for k in TEACHER_INPUTS}, labels

    teacher.fit(data.train.map(teacher_columns), epochs=3, verbose=0,
                shuffle=False)
    path = str(tmp_path_factory.mktemp("teacher") / "teacher.keras")
    teacher.save(path)
    return path


class TestDataErrors:
    """Every problem is one line on stderr and exit status 1."""

    def test_data_needs_label(self, clicks_csv, capsys):
        assert cli.main(["distill", "--data", clicks_csv]) == 1
        assert "needs --label COLUMN" in _one_line_error(capsys)

    def test_label_needs_data(self, capsys):
        assert cli.main(["distill", "--label", "clicked"]) == 1
        assert "describe the files given with --data" in _one_line_error(
            capsys
        )

    def test_data_dir_does_not_go_with_data(self, clicks_csv, capsys):
        argv = ["distill", "--data", clicks_csv, "--label", "clicked",
                "--data-dir", "ml-100k"]
        assert cli.main(argv) == 1
        assert "--data-dir locates MovieLens-100K" in _one_line_error(capsys)

    def test_batch_size_reaches_the_data(self, clicks_csv):
        # The recipe's batch size is the pipelines' too: a distillation of
        # your files steps through batches of --batch-size rows.
        args = cli.build_parser().parse_args(
            ["distill", "--data", str(clicks_csv), "--label", "clicked",
             "--batch-size", "96"])
        config = cli._recipe(args, recipes.Recipe())
        assert config.batch_size == 96
        data = cli_data.load_data(args, batch_size=config.batch_size)
        _, labels = next(iter(data.train))
        assert labels.shape[0] == 96

    def test_own_data_is_split_at_random(self, clicks_csv, capsys):
        argv = ["distill", "--data", clicks_csv, "--label", "clicked",
                "--split", "temporal"]
        assert cli.main(argv) == 1
        assert "--split temporal needs MovieLens-100K" in _one_line_error(
            capsys
        )

    @pytest.mark.parametrize("command", ["distill", "export"])
    def test_wrong_data_dir_is_an_error(self, command, teacher_file,
                                        tmp_path, capsys, monkeypatch):
        # Regression: a folder without the files fell back to another copy.
        monkeypatch.delenv("TFKD_DATA_DIR", raising=False)
        argv = [command, "--data-dir", str(tmp_path)]
        if command == "export":
            argv[1:1] = [teacher_file, str(tmp_path / "t.tflite")]
        assert cli.main(argv) == 1
        err = _one_line_error(capsys, command)
        assert f"data_dir {tmp_path} holds no MovieLens-100K files" in err

    def test_wrong_data_dir_variable_is_an_error(self, tmp_path, capsys,
                                                 monkeypatch):
        monkeypatch.setenv("TFKD_DATA_DIR", str(tmp_path / "typo"))
        assert cli.main(["distill"]) == 1
        assert "$TFKD_DATA_DIR" in _one_line_error(capsys)

    def test_bad_row_named_by_row_and_column(self, tmp_path, capsys):
        frame = clicks_frame(20)
        frame.loc[2, "price"] = np.nan  # written as an empty cell
        frame.to_csv(tmp_path / "x.csv", index=False)
        argv = ["distill", "--data", str(tmp_path / "x.csv"), "--label",
                "clicked"]
        assert cli.main(argv) == 1
        # Data row 2 (from 0) is file row 4: the header is row 1.
        assert ("x.csv row 4, column 'price' is empty"
                in _one_line_error(capsys))

    def test_missing_label_lists_columns(self, clicks_csv, capsys):
        argv = ["distill", "--data", clicks_csv, "--label", "click"]
        assert cli.main(argv) == 1
        assert ("has no label column 'click'. Its columns: uid, track, hour, "
                "price, clicked") in _one_line_error(capsys)

    def test_spec_that_is_not_json(self, clicks_csv, tmp_path, capsys):
        (tmp_path / "spec.json").write_text("{features: ")
        argv = ["distill", "--data", clicks_csv, "--spec",
                str(tmp_path / "spec.json")]
        assert cli.main(argv) == 1
        assert "is not a feature spec" in _one_line_error(capsys)

    def test_teacher_inputs_must_be_columns(self, clicks_csv, tmp_path,
                                            capsys):
        user = keras.Input((), dtype="int32", name="user_id")
        logit = keras.layers.Dense(1)(
            keras.layers.Embedding(10, 2)(user)
        )
        keras.Model({"user_id": user}, logit).save(tmp_path / "t.keras")
        argv = ["distill", "--data", clicks_csv, "--label", "clicked",
                "--teacher", str(tmp_path / "t.keras")]
        assert cli.main(argv) == 1
        err = _one_line_error(capsys)
        assert "takes inputs ['user_id']; the data has no 'user_id'" in err
        assert "Its features: uid, track, hour, price" in err

    @pytest.mark.parametrize("flag", [["--max-tokens", "100"],
                                      ["--hash-column", "uid=64"]])
    def test_vocabulary_flags_need_data(self, capsys, flag):
        assert cli.main(["distill", *flag]) == 1
        assert ("--min-count, --max-tokens, --list-column and --hash-column "
                "describe the files given with --data") in _one_line_error(
                    capsys)

    @pytest.mark.parametrize("flag", ["--output", "--spec-out"])
    def test_unwritable_path_refused_before_training(self, clicks_csv,
                                                     tmp_path, capsys, flag):
        (tmp_path / "a_file").write_text("")
        target = str(tmp_path / "a_file" / "student.keras")
        argv = ["distill", "--data", clicks_csv, "--label", "clicked",
                flag, target]
        assert cli.main(argv) == 1
        err = _one_line_error(capsys)
        assert f"{flag} {target} cannot be written: " in err
        assert "a_file is a file, not a folder" in err
        assert "epochs" not in capsys.readouterr().err

    def test_export_refuses_a_model_smaller_than_the_vocabulary(
            self, tmp_path, capsys):
        frame = clicks_frame(200).assign(
            uid=lambda f: "u" + f["uid"].astype(str))
        frame.to_csv(tmp_path / "text.csv", index=False)
        uid = keras.Input((), dtype="int32", name="uid")
        logit = keras.layers.Dense(1)(keras.layers.Embedding(5, 2)(uid))
        keras.Model({"uid": uid}, logit).save(tmp_path / "small.keras")
        spec = datasets.from_files(tmp_path / "text.csv", label="clicked")
        (tmp_path / "spec.json").write_text(json.dumps(spec.spec.to_dict()))
        argv = ["export", str(tmp_path / "small.keras"),
                str(tmp_path / "small.tflite"), "--data",
                str(tmp_path / "text.csv"), "--spec",
                str(tmp_path / "spec.json")]
        assert cli.main(argv) == 1
        err = _one_line_error(capsys, "export")
        assert "has 5 rows for 'uid', but the data's vocabulary has" in err
        assert not (tmp_path / "small.tflite").exists()

    def test_unexpected_error_points_at_the_traceback(self, monkeypatch,
                                                      capsys):
        def fail(*args, **kwargs):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(cli_data, "load_data", fail)
        assert cli.main(["distill"]) == 1
        assert ("RuntimeError: disk on fire (set TFKD_DEBUG=1 to see the "
                "traceback)") in _one_line_error(capsys)
        monkeypatch.setenv("TFKD_DEBUG", "1")
        with pytest.raises(RuntimeError, match="disk on fire"):
            cli.main(["distill"])


def _run_tflite_module():
    spec = importlib.util.spec_from_file_location("run_tflite", RUN_TFLITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_text_ids_keep_their_vocabulary_from_distill_to_export(
        teacher_file, tmp_path, capsys):
    # Text user ids and no --spec-out: distill still keeps the spec, and
    # export refuses to number the ids again without it.
    frame = clicks_frame(300).assign(uid=lambda f: "u" + f["uid"].astype(str))
    frame.to_csv(tmp_path / "text.csv", index=False)
    student = str(tmp_path / "student.keras")
    assert cli.main([
        "distill", "--data", str(tmp_path / "text.csv"), "--label",
        "clicked", "--teacher", teacher_file, "--epochs", "1", "--output",
        student, "--quiet",
    ]) == 0
    spec_path = tmp_path / "student.spec.json"
    assert f"Feature spec written to {spec_path}" in capsys.readouterr().out
    spec = datasets.FeatureSpec.from_dict(json.loads(spec_path.read_text()))
    assert spec["uid"].vocabulary[0].startswith("u")
    export = ["export", student, str(tmp_path / "s.tflite"), "--data",
              str(tmp_path / "text.csv"), "--quantization", "none"]
    assert cli.main([*export, "--label", "clicked"]) == 1
    err = _one_line_error(capsys, "export")
    assert "has columns with a vocabulary (uid): pass --spec" in err
    assert not (tmp_path / "s.tflite").exists()
    assert cli.main([*export, "--spec", str(spec_path)]) == 0
    sidecar = json.loads((tmp_path / "s.json").read_text())
    assert sidecar["feature_spec"]["features"][0]["vocabulary"] == list(
        spec["uid"].vocabulary)


def test_hash_column_from_distill_to_the_app(teacher_file, tmp_path,
                                              capsys):
    # --hash-column: the spec says how the column was hashed, and export
    # needs no spec for it (a hash, unlike a vocabulary, is not rebuilt).
    frame = clicks_frame(300).assign(uid=lambda f: "u" + f["uid"].astype(str))
    frame.to_csv(tmp_path / "h.csv", index=False)
    student = str(tmp_path / "student.keras")
    data = ["--data", str(tmp_path / "h.csv"), "--label", "clicked",
            "--hash-column", "uid=100"]
    assert cli.main(["distill", *data, "--teacher", teacher_file,
                     "--epochs", "1", "--output", student, "--quiet"]) == 0
    spec = datasets.FeatureSpec.from_dict(json.loads(
        (tmp_path / "student.spec.json").read_text()))
    assert (spec["uid"].hash_buckets, spec["uid"].vocabulary_size) == (100,
                                                                        101)
    tflite = str(tmp_path / "s.tflite")
    assert cli.main(["export", student, tflite, *data, "--quantization",
                     "none"]) == 0
    capsys.readouterr()
    sidecar = json.loads((tmp_path / "s.json").read_text())
    assert sidecar["feature_spec"]["features"][0]["hash_buckets"] == 100
    request = {k: (v.item() if hasattr(v, "item") else v)
               for k, v in frame.drop(columns="clicked").iloc[0].items()}
    scores = _run_tflite_module().score(
        tflite, [request, {**request, "uid": "u" + "9" * 30}])
    assert np.isfinite(scores).all()
    with pytest.raises(SystemExit):
        cli.main(["distill", *data[:4], "--hash-column", "uid=many"])
    assert "expected NAME=BUCKETS" in capsys.readouterr().err


def test_distill_then_export_int8_on_own_data(clicks_csv, teacher_file,
                                              tmp_path, capsys):
    # The user's flow: their CSV and their teacher, one epoch of
    # distillation, an editable spec, then full int8 scored on LiteRT.
    keras.utils.set_random_seed(0)
    student_path = str(tmp_path / "student.keras")
    spec_path = str(tmp_path / "spec.json")
    assert cli.main([
        "distill", "--data", clicks_csv, "--label", "clicked",
        "--teacher", teacher_file, "--epochs", "1", "--output",
        student_path, "--spec-out", spec_path, "--quiet",
    ]) == 0
    out = capsys.readouterr().out
    assert f"Feature spec written to {spec_path}" in out
    assert f"Student written to {student_path}" in out
    with open(spec_path) as f:
        spec = datasets.FeatureSpec.from_dict(json.load(f))
    assert spec == datasets.from_files(clicks_csv, label="clicked").spec

    tflite_path = str(tmp_path / "student.tflite")
    assert cli.main([
        "export", student_path, tflite_path, "--data", clicks_csv,
        "--spec", spec_path, "--calibration-batches", "5",
    ]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quantization"] == "int8"
    assert report["metric_before"] - report["metric_after"] < 0.005
    with open(tflite_path[: -len(".tflite")] + ".json") as f:
        sidecar = json.load(f)
    assert {i["name"]: i["dtype"] for i in sidecar["inputs"]} == {
        "uid": "int32", "track": "int32", "hour": "int32",
        "price": "float32",
    }
    assert sidecar["feature_spec"] == spec.to_dict()

    # Full int8 quantizes the float price input on the range seen in
    # calibration (the train split); rows inside it are compared.
    train_prices = datasets.from_files(clicks_csv, spec=spec).frames[
        "train"
    ]["price"]
    rows = clicks_frame()
    rows = rows[rows["price"].between(train_prices.min(),
                                      train_prices.max())].iloc[:20]
    requests = rows.drop(columns="clicked").to_dict("records")
    litert = _run_tflite_module().score(tflite_path, requests)
    student = keras.models.load_model(student_path)
    features = datasets.features_from_frame(rows, spec)
    keras_logits = np.asarray(student(features)).reshape(-1)
    # int8 keeps the logits within a tenth of the float model here.
    assert np.abs(litert - keras_logits).max() < 0.1



def test_export_a_hand_built_model_on_own_data(clicks_csv, teacher_file,
                                               tmp_path, capsys):
    tflite_path = str(tmp_path / "teacher.tflite")
    assert cli.main([
        "export", teacher_file, tflite_path, "--data", clicks_csv,
        "--label", "clicked", "--quantization", "none",
    ]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] < 1e-5
    with open(tflite_path[: -len(".tflite")] + ".json") as f:
        feature_spec = json.load(f)["feature_spec"]
    # The sidecar describes the model's inputs, not every column.
    assert [f["name"] for f in feature_spec["features"]] == list(
        TEACHER_INPUTS
    )


def test_sidecar_spec_takes_the_models_table_sizes():
    # A student trained with 200 uid rows, exported with files whose
    # largest uid is 7: the sidecar must say what the model holds.
    trained = datasets.FeatureSpec(
        (datasets.Feature("uid", 200),
         datasets.Feature("price", kind="numeric")),
        "ctr", "clicked", "binary",
    )
    student = models.student(trained)
    data_spec = datasets.FeatureSpec(
        (datasets.Feature("uid", 8), datasets.Feature("hour", 24),
         datasets.Feature("price", kind="numeric", mean=2.0, std=1.0)),
        "ctr", "clicked", "binary",
    )
    spec = cli_data.spec_for_model(data_spec, student, "student.keras")
    assert spec.names == ("uid", "price")
    assert spec.vocabulary_sizes == {"uid": 200}


def test_distill_reads_a_folder_of_parquet_shards(teacher_file, tmp_path,
                                                  capsys):
    folder = tmp_path / "shards"
    folder.mkdir()
    frame = clicks_frame()
    for k in range(3):
        frame.iloc[k * 100:(k + 1) * 100].to_parquet(
            folder / f"part-{k}.parquet", index=False
        )
    output = str(tmp_path / "student.keras")
    assert cli.main([
        "distill", "--data", str(folder), "--label", "clicked",
        "--teacher", teacher_file, "--epochs", "1", "--output", output,
        "--quiet",
    ]) == 0
    student = keras.models.load_model(output)
    assert sorted(t.name for t in student.inputs) == [
        "hour", "price", "track", "uid"
    ]


# What TensorFlow prints while it starts, past TF_CPP_MIN_LOG_LEVEL=2.
STARTUP_LINES = re.compile(
    r"I0000|E0000|W0000|absl|oneDNN|cudart_stub|cuInit|XNNPACK"
)


def test_distill_stderr_is_one_line_per_model(clicks_csv, tmp_path):
    env = dict(os.environ)
    for name in ("TFKD_DEBUG", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "tfkd.cli.main", "distill", "--data", clicks_csv,
         "--label", "clicked", "--epochs", "1", "--teachers", "2",
         "--output", str(tmp_path / "student.keras")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert not STARTUP_LINES.search(result.stderr), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    for k, line in enumerate(lines[:2]):
        assert re.fullmatch(rf"teacher {k + 1}/2: 1 epoch, val auc "
                            r"0\.\d{4}, \d+ s", line), line
    assert re.fullmatch(r"student \(distilled, alpha=0\.2, T=2\.0, no "
                        r"transfer set: no user and item tables\): 1 "
                        r"epoch, val auc 0\.\d{4}, \d+ s", lines[2]), lines[2]
    assert result.stdout.splitlines() == [
        f"Student written to {tmp_path / 'student.keras'}"
    ]


def test_bench_keeps_native_notices_off_stderr(monkeypatch, capfd,
                                               tmp_path):
    # What the converter and LiteRT write to fd 2 during `tfkd bench`
    # (measured: four `fully_quantize` lines and the XNNPACK notice).
    from tfkd.bench import export_bench as bench

    def fake_run_bench(student, data, **kwargs):
        os.write(2, b"fully_quantize: 0, inference_type: 6, "
                    b"input_inference_type: FLOAT32\n"
                    b"INFO: Created TensorFlow Lite XNNPACK delegate for "
                    b"CPU.\n")
        return {"int8": {"bytes": 1}}

    monkeypatch.delenv("TFKD_DEBUG", raising=False)
    monkeypatch.setattr(bench, "load_or_train",
                        lambda model, epochs: ("student", None, "data"))
    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--json", str(out)]) == 0
    assert capfd.readouterr().err == ""
    assert json.loads(out.read_text()) == {"int8": {"bytes": 1}}
