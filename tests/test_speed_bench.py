"""Tests for the training-throughput bench, `tfkd bench --speed`.

No timing is asserted: speed goals live in the benchmark's JSON
(docs/BENCHMARKS.md), never in tests. What is tested is that every path
runs, the figures are put together correctly and the bench runs on JAX
and without TensorFlow.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfkd import models
from tfkd.bench import speed as speed_bench
from tfkd.bench import speed_paths as speed_bench_paths
from tfkd.bench import speed_sizes as speed_bench_sizes
from tfkd.bench.speed_report import goal_report
from tfkd.bench.speed_report import paired_ratios
from tfkd.bench.speed_report import summarize
from tfkd.bench.speed_report import throughput_ratios
from tfkd.cli import main as cli
from tfkd.datasets import schema

ROOT = pathlib.Path(__file__).parents[1]
STANDARD_PATHS = (
    "student", "online", "offline", "keras", "teacher_forward",
    "offline_custom_loss",
)
# Tiny runs: 2 batches of 512 (the last one partial), one timed round.
TINY = ["--rows", "900", "--batch-size", "512", "--rounds", "1"]


def _tiny_settings(**overrides):
    values = dict(rows=900, batch_size=512, rounds=1, data="synthetic")
    return speed_bench.SpeedSettings(**{**values, **overrides})


def _run_python(args, env, timeout=300):
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=timeout,
    )


def _env(**changes):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(changes)
    return env


class TestThroughputRatios:
    def test_ratios_from_literal_rates(self):
        # limit = 1 / (1/100 + 1/50) = 100/3 = 33.33 examples/s;
        # online 30 / limit = 0.9, online 30 / keras 40 = 0.75,
        # offline 90 / student 100 = 0.9.
        ratios = throughput_ratios(
            student=100.0, online=30.0, offline=90.0, keras=40.0,
            teacher_forward=50.0,
        )
        assert ratios["limit"] == pytest.approx(100.0 / 3.0)
        assert ratios["online_vs_limit"] == pytest.approx(0.9)
        assert ratios["online_vs_keras"] == pytest.approx(0.75)
        assert ratios["offline_vs_student"] == pytest.approx(0.9)
        assert "online_vs_reference" not in ratios

    def test_failed_path_gives_none(self):
        # The JAX run: tfkd's Distiller fails, so its ratios are unknown.
        ratios = throughput_ratios(
            student=100.0, online=None, offline=50.0, keras=40.0,
            teacher_forward=50.0, reference=80.0,
        )
        assert ratios["online_vs_keras"] is None
        assert ratios["online_vs_limit"] is None
        assert ratios["online_vs_reference"] is None
        assert ratios["keras_vs_reference"] == pytest.approx(0.5)
        assert ratios["offline_vs_student"] == pytest.approx(0.5)

    def test_no_limit_without_teacher_forward(self):
        ratios = throughput_ratios(student=100.0, online=30.0)
        assert ratios["limit"] is None
        assert ratios["online_vs_limit"] is None

    def test_paired_ratio_is_median_of_round_ratios(self):
        # Rounds: 2/4 = 0.5, 6/4 = 1.5, 3/1 = 3.0 -> median 1.5, while
        # the ratio of the medians is 3/4 = 0.75.
        rates = {"online": [2.0, 6.0, 3.0], "keras": [4.0, 4.0, 1.0]}
        assert paired_ratios(rates)["online_vs_keras"] == 1.5
        assert paired_ratios(rates)["offline_vs_student"] is None

    @pytest.mark.parametrize(
        "value, met",
        [(1.2, True), (1.0, True), (0.82, False), (None, None)],
        ids=["above", "at_target", "below", "not_measured"],
    )
    def test_goal_met_at_or_above_target(self, value, met):
        goal = goal_report({"online_vs_keras": value})["online_vs_keras"]
        assert goal == {"value": value, "target": ">= 1.0", "met": met}

    def test_summarize_median_min_max(self):
        entry = summarize([3.0, 1.0, 2.0])
        assert (entry["examples_per_sec"], entry["min"], entry["max"]) == (
            2.0, 1.0, 3.0)
        assert entry["rounds"] == [3.0, 1.0, 2.0]
        assert entry["examples_per_cpu_sec"] is None
        # A round too short for the CPU clock gives None; it is left out.
        assert summarize([1.0] * 3, cpu_rates=[None, 4.0, 2.0])[
            "examples_per_cpu_sec"] == 3.0
        assert summarize([], "ValueError: boom") == {
            "error": "ValueError: boom"}


class TestTimePaths:
    def test_rates_are_rows_over_seconds(self):
        calls = []

        def make(name, seconds):
            def run():
                calls.append(name)
                return seconds
            return lambda: run

        rates, cpu_rates, errors = speed_bench.time_paths(
            {"a": make("a", 0.5), "b": make("b", 2.0)}, rounds=2, rows=100
        )
        # 100 rows in 0.5 s = 200/s; in 2 s = 50/s.
        assert rates == {"a": [200.0, 200.0], "b": [50.0, 50.0]}
        assert [len(r) for r in cpu_rates.values()] == [2, 2]
        assert errors == {}
        # Warm-up a, b; then round 1 a, b; round 2 rotated: b, a.
        assert calls == ["a", "b", "a", "b", "b", "a"]

    def test_failing_path_is_reported_not_raised(self):
        def broken():
            raise RuntimeError("no JAX train step")

        rates, _, errors = speed_bench.time_paths(
            {"ok": lambda: (lambda: 1.0), "broken": broken}, rounds=1,
            rows=10,
        )
        assert rates["ok"] == [10.0]
        assert rates["broken"] == []
        assert errors == {"broken": "RuntimeError: no JAX train step"}


class TestSpeedSettings:
    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            ({"backend": "torch"}, ValueError, "`backend` must be one of"),
            ({"rounds": 0}, ValueError, "`rounds` must be >= 1"),
            ({"rows": 2.5}, TypeError, "`rows` must be an int"),
            ({"batch_size": True}, TypeError, "`batch_size` must be an int"),
            ({"data": "criteo"}, ValueError, "`data` must be one of"),
            ({"alpha": 1.5}, ValueError, "`alpha` must be in"),
            ({"temperature": 0.0}, ValueError, "`temperature` must be > 0"),
        ],
        ids=["backend", "rounds", "rows", "batch_size", "data", "alpha",
             "temperature"],
    )
    def test_rejects_bad_settings(self, kwargs, error, match):
        with pytest.raises(error, match=match):
            speed_bench.SpeedSettings(**kwargs)

    def test_data_defaults_by_backend(self):
        assert speed_bench.SpeedSettings().data == "movielens"
        assert speed_bench.SpeedSettings(backend="jax").data == "synthetic"

    def test_size_defaults(self):
        demo = speed_bench.SpeedSettings()
        assert (demo.batch_size, demo.rows, demo.repeat) == (1024, None, 4)
        large = speed_bench.SpeedSettings(size="large")
        assert large.data == "synthetic"  # on TensorFlow too
        assert (large.batch_size, large.rows) == (65_536, 128 * 65_536)
        mine = speed_bench.SpeedSettings(size="large", batch_size=8, rows=9)
        assert (mine.batch_size, mine.rows) == (8, 9)

    def test_large_refuses_movielens(self):
        with pytest.raises(ValueError, match="'large' size has no movielens"):
            speed_bench.SpeedSettings(size="large", data="movielens")

    def test_rejects_unknown_size(self):
        with pytest.raises(ValueError, match="`size` must be one of"):
            speed_bench.SpeedSettings(size="huge")

    def test_refuses_other_keras_backend(self):
        with pytest.raises(ValueError, match="Set KERAS_BACKEND=jax"):
            speed_bench.run_speed_bench(_tiny_settings(backend="jax"))


# Two examples, alpha 0.5, T 2: labels (1, 0), student logits (0, 1),
# teacher logits (2, 2). bce = softplus(s) - y*s = (0.693147, 1.313262);
# p = sigmoid(1) = 0.731059, q = sigmoid(s/2) = (0.5, 0.622459);
# KL = p*log(p/q) + (1-p)*log((1-p)/(1-q)) = (0.110944, 0.026345), times
# T**2 = (0.443776, 0.105378). Loss = 0.5*1.003205 + 0.5*0.274577.
TWO_EXAMPLES_LOSS = 0.638891


class TestCachedDistillationLoss:
    def test_two_examples(self):
        loss = speed_bench_paths.CachedDistillationLoss(0.5, 2.0)
        y_true = np.array([[1.0, 2.0], [0.0, 2.0]], np.float32)
        value = loss(y_true, np.array([[0.0], [1.0]], np.float32))
        assert float(value) == pytest.approx(TWO_EXAMPLES_LOSS, abs=1e-5)

    def test_jax_reference_loss_agrees(self):
        # The hand-written JAX step must train on the same loss.
        pytest.importorskip("jax")
        from tfkd.bench.speed_jax import distillation_loss

        value = distillation_loss(
            np.array([[1.0], [0.0]], np.float32),
            np.array([[0.0], [1.0]], np.float32),
            np.array([[2.0], [2.0]], np.float32),
            alpha=0.5, t=2.0,
        )
        assert float(value) == pytest.approx(TWO_EXAMPLES_LOSS, abs=1e-5)

    def test_matches_distiller_formula(self):
        # Label 1, teacher logit 2, student logit 0, alpha 0.5, T 2:
        # bce = log(2) = 0.693147; t/T = 1, s/T = 0, p = sigmoid(1) =
        # 0.731059: KL = p*log(2p) + (1-p)*log(2(1-p)) = 0.277718 -
        # 0.166775 = 0.110943; times T**2 = 0.443772.
        # Loss = 0.5*0.693147 + 0.5*0.443772 = 0.568460.
        loss = speed_bench_paths.CachedDistillationLoss(0.5, 2.0)
        value = loss(np.array([[1.0, 2.0]]), np.array([[0.0]]))
        assert float(value) == pytest.approx(0.568460, abs=1e-5)


@pytest.fixture(scope="module")
def tensorflow_report():
    # A user's own model beside the standard paths: the A/B hook.
    def hand_built_path(setup):
        features = setup.spec.features
        inputs = {
            f.name: keras.Input(shape=(f.length,) if f.is_list else (),
                                dtype="int32", name=f.name)
            for f in features
        }
        flat = [keras.layers.Reshape((f.length,))(inputs[f.name])
                for f in features]
        x = keras.layers.Concatenate()(flat)
        x = keras.layers.Embedding(2000, 2)(x)
        outputs = keras.layers.Dense(1)(keras.layers.Flatten()(x))
        model = keras.Model(inputs, outputs)
        model.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=True))
        return speed_bench_paths.fit_runner(model, setup.feed)

    return speed_bench.run_speed_bench(
        _tiny_settings(rounds=2), extra_paths={"mine": hand_built_path}
    )


class TestTensorFlowBench:
    def test_every_path_has_a_rate(self, tensorflow_report):
        paths = tensorflow_report["paths"]
        assert set(paths) == {*STANDARD_PATHS, "mine"}
        for name, entry in paths.items():
            assert entry["error"] is None, name
            assert entry["min"] <= entry["examples_per_sec"] <= entry["max"]
            assert len(entry["rounds"]) == 2

    def test_ratios_come_from_the_medians(self, tensorflow_report):
        rate = {
            name: entry["examples_per_sec"]
            for name, entry in tensorflow_report["paths"].items()
        }
        ratios = tensorflow_report["ratios"]
        assert ratios["online_vs_keras"] == rate["online"] / rate["keras"]
        assert ratios["offline_vs_student"] == (
            rate["offline"] / rate["student"])
        limit = 1 / (1 / rate["student"] + 1 / rate["teacher_forward"])
        assert ratios["limit"] == pytest.approx(limit)
        goal = tensorflow_report["goals"]["online_vs_limit"]
        assert goal["met"] == (goal["value"] >= 0.95)

    def test_records_settings_and_versions(self, tensorflow_report):
        settings = tensorflow_report["settings"]
        assert settings["rows"] == 900
        assert settings["steps_per_epoch"] == 2
        assert settings["batch_size"] == 512
        assert tensorflow_report["backend"] == "tensorflow"
        assert tensorflow_report["versions"]["keras"] == keras.__version__
        assert set(tensorflow_report["descriptions"]) == set(STANDARD_PATHS)
        json.dumps(tensorflow_report)  # serializable as it is


class TestSizes:
    def test_demo_models_are_the_demo_presets(self):
        spec = schema.make_spec(
            "ctr", speed_bench_sizes.MOVIELENS_100K_VOCABULARY_SIZES)
        for role, build in (("teacher", models.teacher),
                            ("student", models.student)):
            model = speed_bench_sizes.build_model(spec, "demo", role, 0)
            assert model.name == role
            assert model.count_params() == build(spec).count_params()

    def test_large_models_have_the_issue_scale(self):
        # Issue #14's accelerator figures: an 18.8M teacher, a 2.2M student.
        spec = schema.make_spec(
            "ctr", speed_bench_sizes.preset("large").vocabulary_sizes)
        teacher = speed_bench_sizes.build_model(spec, "large", "teacher", 0)
        student = speed_bench_sizes.build_model(spec, "large", "student", 1)
        assert teacher.count_params() == 18_720_513
        assert student.count_params() == 2_246_257

    def test_large_synthetic_rows_are_drawn_not_repeated(self):
        settings = _tiny_settings(size="large", rows=700, repeat=4)
        features, labels, spec = speed_bench_paths.load_arrays(settings)
        assert labels.shape == (700, 1)
        assert spec["user_id"].vocabulary_size == 180_000
        users = features["user_id"]
        assert users.max() < 180_000 and len(np.unique(users)) > 690


class TestCommandLine:
    def test_speed_options_parse(self):
        args = cli.build_parser().parse_args(
            ["bench", "--speed", "--backend", "jax", "--synthetic", *TINY]
        )
        settings = speed_bench.settings_from_args(args)
        assert args.speed
        assert settings == speed_bench.SpeedSettings(
            backend="jax", rows=900, batch_size=512, rounds=1,
            data="synthetic",
        )

    def test_size_reaches_the_child(self, monkeypatch):
        calls = []
        monkeypatch.delenv("KERAS_BACKEND", raising=False)
        monkeypatch.setattr(
            speed_bench.subprocess, "run",
            lambda command, env, check: calls.append(command)
            or subprocess.CompletedProcess(command, 0))
        assert cli.main(["bench", "--speed", "--backend", "jax", "--size",
                         "large", "--rounds", "1"]) == 0
        command, = calls
        assert command[command.index("--size") + 1] == "large"
        assert command[command.index("--batch-size") + 1] == "65536"

    def test_speed_refuses_model_and_qat(self, capsys):
        assert cli.main(["bench", "--speed", "--qat"]) == 1
        assert "--model and --qat do not apply" in capsys.readouterr().err

    def test_writes_report_in_process(self, tmp_path, monkeypatch, capsys):
        seen = []
        report = {
            "backend": "tensorflow",
            "settings": {"rows": 900, "rounds": 1},
            "paths": {"online": {"examples_per_sec": 1234.0}},
            "goals": {"online_vs_keras": {
                "value": 0.5, "target": ">= 1.0", "met": False}},
        }

        def fake_run(settings):
            seen.append(settings)
            return report

        monkeypatch.setattr(speed_bench, "run_speed_bench", fake_run)
        path = tmp_path / "speed.json"
        status = cli.main(["bench", "--speed", "--backend", "tensorflow",
                           "--synthetic", *TINY, "--json", str(path)])
        assert status == 0
        assert seen == [_tiny_settings()]
        assert json.loads(path.read_text()) == report
        out = capsys.readouterr().out
        assert "online                    1,234 ex/s" in out
        assert "online_vs_keras      0.500 (>= 1.0): NOT met" in out

    def test_module_rejects_bad_rows_in_one_line(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            speed_bench.main(["--rows", "0"])
        assert exit_info.value.code == 2
        assert "`rows` must be >= 1. Received: rows=0" in (
            capsys.readouterr().err)

    def test_other_backend_reruns_in_child(self, monkeypatch):
        # Keras runs on TensorFlow here: `--backend jax` must start a new
        # interpreter with KERAS_BACKEND=jax rather than fail.
        calls = []

        def fake_subprocess_run(command, env, check):
            calls.append((command, env["KERAS_BACKEND"]))
            return subprocess.CompletedProcess(command, 0)

        monkeypatch.delenv("KERAS_BACKEND", raising=False)
        monkeypatch.setattr(speed_bench.subprocess, "run",
                            fake_subprocess_run)
        assert cli.main(["bench", "--speed", "--backend", "jax", *TINY]) == 0
        (command, backend), = calls
        assert backend == "jax"
        assert command[1:5] == ["-m", "tfkd.bench.speed", "--backend", "jax"]
        assert command[command.index("--rows") + 1] == "900"
        assert "--synthetic" in command  # the default on JAX


def _check_jax_report(path):
    report = json.loads(path.read_text())
    assert report["backend"] == "jax"
    paths = report["paths"]
    for name in ("student", "offline_custom_loss", "keras",
                 "teacher_forward", "reference"):
        assert paths[name]["error"] is None, (name, paths[name])
    rate = {n: e.get("examples_per_sec") for n, e in paths.items()}
    assert report["ratios"]["keras_vs_reference"] == (
        rate["keras"] / rate["reference"])
    # A Distiller that cannot train on JAX gets an error row, not a crash.
    for name in ("online", "offline"):
        assert (paths[name]["error"] is None) == (rate[name] is not None)
    return report


class TestJaxBench:
    def test_runs_tiny_on_jax(self, tmp_path):
        path = tmp_path / "jax.json"
        result = _run_python(
            ["-m", "tfkd.bench.speed", "--backend", "jax", *TINY,
             "--json", str(path)],
            _env(KERAS_BACKEND="jax"),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report = _check_jax_report(path)
        assert report["settings"]["data"] == "synthetic"
        assert report["versions"]["jax"] is not None


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory):
    # First on PYTHONPATH, a `tensorflow` that fails to import as a
    # missing one does: the GPU machine the JAX bench runs on has none.
    blocker = tmp_path_factory.mktemp("no_tensorflow")
    (blocker / "tensorflow").mkdir()
    (blocker / "tensorflow" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorflow'\", "
        "name='tensorflow')\n"
    )
    return _env(KERAS_BACKEND="jax", PYTHONPATH=str(blocker))


class TestWithoutTensorFlow:
    def test_blocker_stops_tensorflow(self, no_tensorflow):
        result = _run_python(["-c", "import tensorflow"], no_tensorflow)
        assert "No module named 'tensorflow'" in result.stderr

    def test_import_tfkd_and_losses(self, no_tensorflow):
        script = (
            "import sys, tfkd\n"
            "loss = tfkd.losses.BinaryKLDivergence()\n"
            "print(round(float(loss([[2.0]], [[0.0]])), 4))\n"
            "print(tfkd.Distiller.__name__)\n"
            "print('tensorflow' in sys.modules)\n"
        )
        result = _run_python(["-c", script], no_tensorflow)
        assert result.returncode == 0, result.stderr[-3000:]
        # 0.3278: the BinaryKLDivergence docstring's own example.
        assert result.stdout.split("\n")[:3] == [
            "0.3278", "Distiller", "False"]

    def test_student_builds_without_tensorflow(self, no_tensorflow):
        script = (
            "import tfkd\n"
            "from tfkd.datasets import Feature, FeatureSpec\n"
            "spec = FeatureSpec(features=(Feature('user_id', 10),\n"
            "                             Feature('genres', 5, 3)),\n"
            "                   task='ctr', label='label',\n"
            "                   label_kind='binary')\n"
            "print(tfkd.models.student(spec).count_params())\n"
        )
        result = _run_python(["-c", script], no_tensorflow)
        assert result.returncode == 0, result.stderr[-3000:]
        # Embeddings (10 + 5) * 5 = 75; Dense 10 -> 16: 176; Dense 16 -> 1:
        # 17. Total 268.
        assert result.stdout.strip() == "268"

    def test_jax_bench_runs_without_tensorflow(self, no_tensorflow, tmp_path):
        path = tmp_path / "jax.json"
        result = _run_python(
            ["-m", "tfkd.bench.speed", "--backend", "jax", *TINY,
             "--json", str(path)],
            no_tensorflow,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        _check_jax_report(path)
