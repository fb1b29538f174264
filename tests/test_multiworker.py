"""MultiWorkerMirroredStrategy with two local worker processes on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import loopback
import numpy as np
import pytest

WORKER = Path(__file__).with_name("mwms_worker.py")


def _env(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _load(path):
    data = np.load(path)
    weights = [data[f"arr_{i}"] for i in range(len(data.files) - 2)]
    return weights, json.loads(str(data["history"])), int(data["replicas"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["live", "cached"])
def test_two_workers_match_single_process(tmp_path, mode):
    # `cached`: two workers distil from cached teacher logits and end where
    # one process distilling from the live teacher ends.
    workers = [f"127.0.0.1:{p}" for p in loopback.free_ports(2)]
    procs = []
    for index in range(2):
        config = {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(tmp_path / f"w{index}.npz"),
                 mode],
                env=_env(config),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    reference = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path / "ref.npz")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]

    ref_weights, ref_history, ref_replicas = _load(tmp_path / "ref.npz")
    assert ref_replicas == 1
    for index in range(2):
        weights, history, replicas = _load(tmp_path / f"w{index}.npz")
        assert replicas == 2
        for key in ("loss", "student_loss", "distillation_loss"):
            np.testing.assert_allclose(
                history[key], ref_history[key], rtol=1e-5
            )
        for a, b in zip(weights, ref_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
