"""The Distiller under Keras' JAX backend matches TensorFlow's.

Each backend runs `tests/backend_worker.py` in its own process (Keras picks
its backend once per process), from the same NumPy weights and data: the
losses before and after one SGD step, and the student's weights after it,
must agree. The same holds for a teacher read from cached logits, which is
how the JAX benchmark on a GPU distils without TensorFlow.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "backend_worker.py")
BACKENDS = ("tensorflow", "jax")


def _run(backend, teacher, pythonpath=None):
    env = dict(os.environ, KERAS_BACKEND=backend)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            [pythonpath, env.get("PYTHONPATH", "")]
        )
    result = subprocess.run(
        [sys.executable, WORKER, teacher], env=env, capture_output=True,
        text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    pytest.importorskip("jax")
    return {
        (backend, teacher): _run(backend, teacher)
        for backend in BACKENDS
        for teacher in ("live", "cached")
    }


class TestJaxBackend:
    @pytest.mark.parametrize("teacher", ["live", "cached"])
    def test_runs_on_the_backend_it_names(self, runs, teacher):
        for backend in BACKENDS:
            assert runs[backend, teacher]["backend"] == backend

    @pytest.mark.parametrize("teacher", ["live", "cached"])
    @pytest.mark.parametrize("when", ["before", "after"])
    def test_losses_match_tensorflow(self, runs, teacher, when):
        tf_logs = runs["tensorflow", teacher][when]
        jax_logs = runs["jax", teacher][when]
        assert set(jax_logs) == {"loss", "student_loss", "distillation_loss"}
        for key, value in tf_logs.items():
            np.testing.assert_allclose(jax_logs[key], value, rtol=1e-5)

    def test_one_step_moves_the_student_alike(self, runs):
        tf_run, jax_run = runs["tensorflow", "live"], runs["jax", "live"]
        assert jax_run["after"]["loss"] < jax_run["before"]["loss"]
        for a, b in zip(tf_run["weights"], jax_run["weights"], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)

    @pytest.mark.parametrize("teacher", ["live", "cached"])
    def test_per_term_weights_match_tensorflow(self, runs, teacher):
        tf_run = runs["tensorflow", teacher]["per_term"]
        jax_run = runs["jax", teacher]["per_term"]
        assert set(jax_run["after"]) == {
            "loss", "student_loss", "distillation_loss", "auc"}
        for key, value in tf_run["after"].items():
            np.testing.assert_allclose(jax_run["after"][key], value,
                                       rtol=1e-5)
        for a, b in zip(tf_run["weights"], jax_run["weights"], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
        for run in (tf_run, jax_run):
            assert run["after"]["auc"] == pytest.approx(run["labelled_auc"])

    def test_cached_logits_match_the_live_teacher(self, runs):
        for backend in BACKENDS:
            live, cached = runs[backend, "live"], runs[backend, "cached"]
            for a, b in zip(live["weights"], cached["weights"], strict=True):
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_jax_distils_where_tensorflow_is_not_installed(runs, tmp_path):
    # The GPU machines that benchmark the JAX path have no TensorFlow: a
    # `tensorflow` package that fails to import stands in for its absence.
    blocker = tmp_path / "tensorflow"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorflow'\", "
        "name='tensorflow')\n"
    )
    for teacher in ("live", "cached"):
        run = _run("jax", teacher, pythonpath=str(tmp_path))
        assert run["after"] == runs["jax", teacher]["after"]
