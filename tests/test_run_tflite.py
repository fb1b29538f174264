"""Tests for `export/run_tflite.py`, the TensorFlow-free device runner."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from test_export import GENRES_LENGTH  # noqa: E402
from test_export import build_tiny_recommender  # noqa: E402
from test_export import make_features  # noqa: E402

from tfkd import export  # noqa: E402

SCRIPT = pathlib.Path(__file__).parents[1] / "export" / "run_tflite.py"
BLOCKED_MODULES = ("tensorflow", "keras", "tfkd")
NUM_REQUESTS = 5


def _load_script_module():
    spec = importlib.util.spec_from_file_location("run_tflite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_tflite = _load_script_module()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    directory = tmp_path_factory.mktemp("artifact")
    model = build_tiny_recommender()
    features = make_features(np.random.default_rng(7), NUM_REQUESTS)
    report = export.to_tflite(
        model, str(directory / "student.tflite"), latency_runs=5
    )
    logits = np.asarray(model(features)).reshape(-1)
    requests = [
        {name: values[i].tolist() for name, values in features.items()}
        for i in range(NUM_REQUESTS)
    ]
    return {"path": report.path, "requests": requests, "logits": logits}


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory):
    # A directory first on PYTHONPATH whose tensorflow, keras and tfkd
    # packages raise on import: the script must not need any of them.
    blocker = tmp_path_factory.mktemp("blocker")
    for name in BLOCKED_MODULES:
        (blocker / name).mkdir()
        (blocker / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not available on the device')\n"
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(blocker)
    return env


def _run(args, env):
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestRunTfliteScript:
    def test_blocker_stops_tensorflow_import(self, blocked_env):
        result = _run(["-c", "import tensorflow"], blocked_env)
        assert result.returncode != 0
        assert "not available on the device" in result.stderr

    def test_scores_match_keras_without_tensorflow(
        self, artifact, blocked_env, tmp_path
    ):
        requests = tmp_path / "requests.json"
        requests.write_text(json.dumps(artifact["requests"]))
        result = _run(
            [str(SCRIPT), artifact["path"], "--requests", str(requests)],
            blocked_env,
        )
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        logits = np.array(printed["logits"])
        np.testing.assert_allclose(logits, artifact["logits"], atol=1e-5)
        np.testing.assert_allclose(
            printed["probabilities"], 1 / (1 + np.exp(-logits)), rtol=1e-12
        )

    def test_rejects_model_that_does_not_match_sidecar(
        self, artifact, blocked_env, tmp_path
    ):
        copy = tmp_path / "student.tflite"
        copy.write_bytes(pathlib.Path(artifact["path"]).read_bytes()[:-1])
        sidecar = pathlib.Path(artifact["path"]).with_suffix(".json")
        (tmp_path / "student.json").write_text(sidecar.read_text())
        requests = tmp_path / "requests.json"
        requests.write_text(json.dumps(artifact["requests"]))
        result = _run(
            [str(SCRIPT), str(copy), "--requests", str(requests)],
            blocked_env,
        )
        assert result.returncode == 1
        assert "does not match its sidecar" in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


class TestRunTfliteErrors:
    """Each problem is one line on stderr and exit status 1."""

    def _error(self, args, env):
        result = _run([str(SCRIPT), *args], env)
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith("run_tflite.py: error: ")
        assert result.stderr.count("\n") == 1, result.stderr
        return result.stderr

    def _requests(self, artifact, tmp_path, text=None):
        path = tmp_path / "requests.json"
        path.write_text(text or json.dumps(artifact["requests"]))
        return str(path)

    def test_missing_model(self, artifact, blocked_env, tmp_path):
        requests = self._requests(artifact, tmp_path)
        missing = str(tmp_path / "gone.tflite")
        err = self._error([missing, "--requests", requests], blocked_env)
        assert f"No model file at {missing}" in err

    def test_missing_sidecar(self, artifact, blocked_env, tmp_path):
        copy = tmp_path / "alone.tflite"
        copy.write_bytes(pathlib.Path(artifact["path"]).read_bytes())
        requests = self._requests(artifact, tmp_path)
        err = self._error([str(copy), "--requests", requests], blocked_env)
        assert f"No sidecar at {tmp_path / 'alone.json'}" in err
        assert "--sidecar PATH" in err

    def test_requests_that_are_not_json(self, artifact, blocked_env,
                                        tmp_path):
        requests = self._requests(artifact, tmp_path, '[{"user_id": 3,')
        err = self._error([artifact["path"], "--requests", requests],
                          blocked_env)
        assert "requests.json (the requests) is not valid JSON" in err

    def test_sidecar_that_is_not_a_sidecar(self, artifact, blocked_env,
                                           tmp_path):
        other = tmp_path / "other.json"
        other.write_text('{"inputs": []}')
        requests = self._requests(artifact, tmp_path)
        err = self._error([artifact["path"], "--requests", requests,
                           "--sidecar", str(other)], blocked_env)
        assert "is not a tfkd sidecar" in err
        assert "'sha256'" in err

    def test_request_missing_a_feature(self, artifact, blocked_env,
                                       tmp_path):
        request = dict(artifact["requests"][0])
        del request["item_id"]
        requests = self._requests(artifact, tmp_path, json.dumps([request]))
        err = self._error([artifact["path"], "--requests", requests],
                          blocked_env)
        assert "Expected exactly the features" in err

    def test_debug_variable_shows_the_traceback(self, blocked_env,
                                                tmp_path):
        env = dict(blocked_env, TFKD_DEBUG="1")
        result = _run([str(SCRIPT), str(tmp_path / "gone.tflite"),
                       "--requests", "r.json"], env)
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr


class TestScore:
    def test_accepts_dict_of_columns(self, artifact):
        columns = run_tflite.to_columns(artifact["requests"])
        scores = run_tflite.score(artifact["path"], columns)
        assert scores.shape == (NUM_REQUESTS,)
        np.testing.assert_allclose(scores, artifact["logits"], atol=1e-5)

    def test_pads_short_genres_with_zero(self, artifact):
        short = dict(artifact["requests"][0], genres=[3, 5])
        padded = dict(short, genres=[3, 5] + [0] * (GENRES_LENGTH - 2))
        scores = run_tflite.score(artifact["path"], [short, padded])
        assert scores[0] == scores[1]

    def test_out_of_range_ids_score_like_unknown(self, artifact):
        base = artifact["requests"][0]
        unknown = dict(base, user_id=0, item_id=0)
        # -3 and 2**40 are outside every vocabulary (2**40 also outside
        # int32: it is clipped, not wrapped onto a valid id).
        negative = dict(base, user_id=-3, item_id=-3)
        huge = dict(base, user_id=2**40, item_id=2**40)
        scores = run_tflite.score(artifact["path"], [unknown, negative, huge])
        assert scores[0] == scores[1] == scores[2]

    def test_rejects_unknown_feature(self, artifact):
        request = dict(artifact["requests"][0], zip_code=12345)
        with pytest.raises(ValueError, match="Expected every request"):
            run_tflite.score(artifact["path"], [artifact["requests"][0],
                                                request])
        with pytest.raises(ValueError, match="Expected exactly the features"):
            run_tflite.score(artifact["path"], [request])

    def test_rejects_too_many_genres(self, artifact):
        request = dict(artifact["requests"][0], genres=list(range(1, 9)))
        with pytest.raises(ValueError, match="at most 6 values"):
            run_tflite.score(artifact["path"], [request])


@pytest.fixture(scope="module")
def retrieval_artifact(tmp_path_factory):
    from tfkd import datasets
    from tfkd import models

    data = datasets.synthetic_movielens(task="retrieval", seed=0)
    model = models.two_tower(data.spec, embedding_dim=8, hidden=(16,))
    model.compile(optimizer="adam")
    model.fit(data.train, epochs=1, verbose=0, shuffle=False)
    path = tmp_path_factory.mktemp("retrieval") / "retrieval.tflite"
    report = export.to_tflite_retrieval(
        model, data.items, path, k=5, users=data.users, latency_runs=5
    )
    users = datasets.features_from_frame(
        data.users.head(NUM_REQUESTS), data.spec,
        names=datasets.USER_FEATURES,
    )
    items = datasets.features_from_frame(
        data.items, data.spec, names=datasets.ITEM_FEATURES
    )
    scores = np.asarray(model.score(users, items))
    requests = [
        {name: values[i].tolist() for name, values in users.items()}
        for i in range(NUM_REQUESTS)
    ]
    return {
        "path": report.path,
        "requests": requests,
        "best_ids": items["item_id"][np.argmax(scores, axis=1)],
    }


class TestOneSidecarSchema:
    """Both tasks write one schema, and the runner reads both."""

    COMMON = {
        "format_version", "tfkd_version", "task", "signature_key", "inputs",
        "outputs", "unknown_ids", "feature_spec", "quantization",
        "compression", "runtime", "metrics", "bytes", "sha256", "created",
    }

    def test_keys_and_output_kinds(self, artifact, retrieval_artifact):
        ranking = run_tflite.load_sidecar(artifact["path"])
        retrieval = run_tflite.load_sidecar(retrieval_artifact["path"])
        assert set(ranking) == self.COMMON
        assert set(retrieval) == self.COMMON | {"k", "num_candidates"}
        assert ranking["task"] == "ranking"
        assert retrieval["task"] == "retrieval"
        assert ranking["format_version"] == retrieval["format_version"] == 2
        assert [o["kind"] for o in ranking["outputs"]] == ["logit"]
        assert [o["kind"] for o in retrieval["outputs"]] == [
            "item_ids", "scores"
        ]
        for sidecar in (ranking, retrieval):
            assert all(o["meaning"] for o in sidecar["outputs"])
            assert sidecar["unknown_ids"]["scored"] == "as id 0"

    def test_runner_prints_top_k_without_tensorflow(
        self, retrieval_artifact, blocked_env, tmp_path
    ):
        requests = tmp_path / "users.json"
        requests.write_text(json.dumps(retrieval_artifact["requests"]))
        result = _run(
            [str(SCRIPT), retrieval_artifact["path"], "--requests",
             str(requests)],
            blocked_env,
        )
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        ids = np.array(printed["item_ids"])
        scores = np.array(printed["scores"])
        assert ids.shape == scores.shape == (NUM_REQUESTS, 5)
        assert np.all(np.diff(scores, axis=1) <= 0)
        np.testing.assert_array_equal(
            ids[:, 0], retrieval_artifact["best_ids"]
        )

    def test_score_refuses_a_retrieval_model(self, retrieval_artifact):
        with pytest.raises(ValueError, match="use run"):
            run_tflite.score(
                retrieval_artifact["path"], retrieval_artifact["requests"]
            )

    def test_newer_format_is_refused(self, artifact, tmp_path):
        sidecar = run_tflite.load_sidecar(artifact["path"])
        newer = tmp_path / "newer.json"
        newer.write_text(json.dumps(dict(sidecar, format_version=3)))
        with pytest.raises(ValueError, match="format_version 3"):
            run_tflite.load_sidecar(artifact["path"], str(newer))
