"""Backup and resume of a Distiller's training (issue 14).

The slow tests SIGKILL a training process (tests/resume_worker.py) in the
middle of an epoch, run the same command again and compare its end with an
unbroken run's. The others interrupt `fit` with an exception in-process,
which leaves the backup behind just as a kill does.

The worker trains 3 epochs of 12 batches (36 steps). `save_freq=5` backs up
after 5, 10, 15 and 20 steps, i.e. after batch 7 of epoch 1 (0-indexed) for
the 20th; a kill after batch 8 of epoch 1 leaves that backup, so the rerun
starts at iteration 20 and trains the 16 steps left.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import loopback
import numpy as np
import pytest
import resume_worker as worker
import tensorflow as tf

import tfkd

WORKER = Path(__file__).with_name("resume_worker.py")
STEPS = 36  # 3 epochs x 12 batches
# The schedules' values at the last epoch: 4 / (2 + 1) and 0.2 + 0.3 * 2.
FINAL_TEMPERATURE, FINAL_ALPHA = 4.0 / 3.0, 0.8


def _run(out, backup_dir, *args):
    (result,) = _run_workers([(out, backup_dir)], *args)
    return result


def _run_workers(paths, *args):
    """One worker per `(out, backup_dir)`; two or more form a cluster."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    ports = loopback.free_ports(len(paths))
    hosts = [f"127.0.0.1:{port}" for port in ports]
    start, procs = time.perf_counter(), []
    for index, (out, backup_dir) in enumerate(paths):
        if len(paths) > 1:
            env["TF_CONFIG"] = json.dumps({
                "cluster": {"worker": hosts},
                "task": {"type": "worker", "index": index},
            })
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(out), str(backup_dir), *args],
            env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        ))
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(
            proc.args, proc.returncode, stdout, stderr
        ))
    seconds = time.perf_counter() - start
    for result in results:
        print(f"resume_worker {' '.join(args)} x{len(paths)}: "
              f"rc={result.returncode}, {seconds:.1f} s, "
              f"{result.stdout.strip()}")
    return results


def _load(path):
    data = np.load(path)
    count = sum(key.startswith("arr_") for key in data.files)
    weights = [data[f"arr_{i}"] for i in range(count)]
    return weights, {key: data[key].item() for key in data.files
                     if not key.startswith("arr_")}


def _kill_and_rerun(tmp_path, *args):
    backup = tmp_path / "backup"
    killed = _run(tmp_path / "killed.npz", backup, *args, "--kill-at", "1:8")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (tmp_path / "killed.npz").exists()
    left = sorted(os.listdir(backup))
    rerun = _run(tmp_path / "rerun.npz", backup, *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not backup.exists()  # deleted once `fit` completed
    return left, _load(tmp_path / "rerun.npz")


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unbroken")
    result = _run(tmp / "a.npz", tmp / "backup", "--save-freq", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    return _load(tmp / "a.npz")


def _assert_same_end(run, reference):
    (weights, values), (ref_weights, ref_values) = run, reference
    for a, b in zip(weights, ref_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert values["iterations"] == ref_values["iterations"] == STEPS
    assert values["temperature"] == FINAL_TEMPERATURE
    assert values["alpha"] == FINAL_ALPHA
    np.testing.assert_allclose(values["temperature_variable"],
                               FINAL_TEMPERATURE, rtol=1e-7)
    np.testing.assert_allclose(values["alpha_variable"], FINAL_ALPHA,
                               rtol=1e-7)


@pytest.mark.slow
class TestKilledRun:
    def test_tfkd_callback_resumes_mid_epoch(self, tmp_path, unbroken):
        left, rerun = _kill_and_rerun(tmp_path, "--save-freq", "5")
        assert left == ["backup_state.json", "epoch-1-batch-8.weights.h5"]
        assert unbroken[1]["start_iterations"] == 0
        # Restored after 20 steps, inside epoch 1: 16 steps left to train.
        assert rerun[1]["start_epoch"] == 1
        assert rerun[1]["start_iterations"] == 20
        _assert_same_end(rerun, unbroken)

    def test_keras_callback_resumes_at_epoch_end(self, tmp_path, unbroken):
        left, rerun = _kill_and_rerun(
            tmp_path, "--callback", "keras", "--save-freq", "epoch"
        )
        assert left == ["latest.weights.h5", "training_metadata.json"]
        assert rerun[1]["start_epoch"] == 1
        assert rerun[1]["start_iterations"] == 12
        _assert_same_end(rerun, unbroken)

    def test_two_workers_resume_mid_epoch(self, tmp_path):
        # MultiWorkerMirroredStrategy on loopback, each worker with its own
        # backup directory; both kill themselves after the same batch.
        def paths(tag):
            return [(tmp_path / f"{tag}{i}.npz", tmp_path / f"backup{tag}{i}")
                    for i in range(2)]

        args = ("--save-freq", "5")
        for result in _run_workers(paths("a"), *args):
            assert result.returncode == 0, result.stderr[-3000:]
        for result in _run_workers(paths("b"), *args, "--kill-at", "1:8"):
            assert result.returncode == -9, result.stderr[-3000:]
        for result in _run_workers(paths("b"), *args):
            assert result.returncode == 0, result.stderr[-3000:]
        for index in range(2):
            unbroken = _load(tmp_path / f"a{index}.npz")
            rerun = _load(tmp_path / f"b{index}.npz")
            assert (rerun[1]["start_epoch"], rerun[1]["start_iterations"]) \
                == (1, 20)
            _assert_same_end(rerun, unbroken)


class StopAt(keras.callbacks.Callback):
    """Interrupts `fit` after one batch, as a crash would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def _fit(backup, stop_at=None, schedule=None, strategy=None):
    """One process's `fit` of the worker's set-up, in-process."""
    distiller = worker.distiller(strategy=strategy)
    features, labels = worker.data()
    probe = worker.StartProbe()
    callbacks = [
        backup,
        tfkd.callbacks.TemperatureScheduler(
            schedule or worker.temperature_schedule
        ),
        tfkd.callbacks.AlphaScheduler(worker.alpha_schedule),
        probe,
    ]
    if stop_at:
        callbacks.append(StopAt(*stop_at))
    try:
        history = distiller.fit(
            features, labels, batch_size=worker.BATCH, epochs=worker.EPOCHS,
            shuffle=False, verbose=0, callbacks=callbacks,
        )
    except KeyboardInterrupt:
        history = None  # interrupted
    return distiller, probe, history


def _interrupted_then_resumed(make_backup, **kwargs):
    assert _fit(make_backup(), stop_at=(1, 8), **kwargs)[2] is None
    return _fit(make_backup(), **kwargs)


def _assert_same_weights(a, b):
    pairs = zip(
        a.student.get_weights(), b.student.get_weights(), strict=True
    )
    for x, y in pairs:
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def _halve(epoch, current):
    return current / 2  # 3 (compile) -> 1.5, 0.75, 0.375


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An unbroken in-process run, backed up every 5 steps."""
    backup_dir = tmp_path_factory.mktemp("reference") / "b"
    return _fit(tfkd.callbacks.BackupAndRestore(backup_dir, save_freq=5))[0]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A run interrupted after batch 8 of epoch 1, then run again."""
    backup_dir = tmp_path_factory.mktemp("resumed") / "b"
    distiller, probe, history = _interrupted_then_resumed(
        lambda: tfkd.callbacks.BackupAndRestore(backup_dir, save_freq=5)
    )
    # A snapshot: a test below trains the Distiller further.
    return distiller, {
        "start": (probe.epoch, probe.iterations),
        "epochs": history.epoch,
        "iterations": int(distiller.optimizer.iterations.numpy()),
        "weights": distiller.student.get_weights(),
        "alpha": distiller.alpha,
        "temperature": distiller.temperature,
    }


class TestBackupAndRestore:
    def test_resumes_mid_epoch_where_it_stopped(self, reference, resumed):
        run = resumed[1]
        assert run["start"] == (1, 20)
        assert run["epochs"] == [1, 2]
        assert run["iterations"] == STEPS
        assert run["temperature"] == reference.temperature
        assert run["alpha"] == reference.alpha == FINAL_ALPHA
        for a, b in zip(
            run["weights"], reference.student.get_weights(), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    def test_schedule_of_the_current_value_is_applied_once(self, tmp_path):
        # The backup after batch 7 of epoch 1 holds T = 0.75; halving it
        # again on the restart would train the rest of epoch 1 at 0.375.
        reference, _, _ = _fit(
            tfkd.callbacks.BackupAndRestore(tmp_path / "a", save_freq=5),
            schedule=_halve,
        )
        assert reference.temperature == 0.375

        def backup():
            return tfkd.callbacks.BackupAndRestore(tmp_path / "b", 5)

        distiller, _, _ = _interrupted_then_resumed(backup, schedule=_halve)
        assert distiller.temperature == 0.375
        _assert_same_weights(distiller, reference)

    def test_resumes_under_mirrored_strategy(self, tmp_path):
        # Two replicas on the two logical CPUs of conftest.py: the skipped
        # batches come from a distributed iterator. TensorFlow numbers
        # collective ops per process, and after another test's
        # MirroredStrategy this one's interrupted run collided with it
        # ("Shape mismatch in the collective instance 100"), so it runs in
        # a process of its own.
        if not os.environ.get(_OWN_PROCESS):
            _run_in_own_process(
                "TestBackupAndRestore::test_resumes_under_mirrored_strategy"
            )
            return

        def run(backup_dir, stop_at=None):
            strategy = tf.distribute.MirroredStrategy()
            backup = tfkd.callbacks.BackupAndRestore(backup_dir, 5)
            return _fit(backup, stop_at, strategy=strategy)

        reference, _, _ = run(tmp_path / "a")
        assert run(tmp_path / "b", stop_at=(1, 8))[2] is None
        distiller, probe, _ = run(tmp_path / "b")
        assert distiller.distribute_strategy.num_replicas_in_sync == 2
        assert (probe.epoch, probe.iterations) == (1, 20)
        assert int(distiller.optimizer.iterations.numpy()) == STEPS
        _assert_same_weights(distiller, reference)

    def test_later_fit_starts_at_its_own_epoch(self, resumed):
        # Keras' callback leaves the restored start epoch on the model.
        distiller = resumed[0]
        features, labels = worker.data()
        history = distiller.fit(features, labels, epochs=2, verbose=0)
        assert history.epoch == [0, 1]

    def test_model_interrupted_while_skipping_still_trains(self, tmp_path):
        def backup():
            return tfkd.callbacks.BackupAndRestore(tmp_path / "b", 5)

        _fit(backup(), stop_at=(1, 8))
        # Interrupted again while it skips the 8 batches the backup holds.
        distiller, _, history = _fit(backup(), stop_at=(1, 3))
        assert history is None
        before = int(distiller.optimizer.iterations.numpy())
        features, labels = worker.data()
        history = distiller.fit(
            features, labels, batch_size=worker.BATCH, epochs=1, verbose=0
        )
        assert history.epoch == [0]
        assert int(distiller.optimizer.iterations.numpy()) == before + 12

    def test_backup_is_replaced_only_once_complete(self, tmp_path, monkeypatch):
        # The third backup dies half-written, as in a kill while saving.
        save_weights, saves = tfkd.Distiller.save_weights, []

        def dies_on_third_save(self, filepath, *args, **kwargs):
            saves.append(filepath)
            if len(saves) == 3:
                Path(filepath).write_bytes(b"half a file")
                raise KeyboardInterrupt
            return save_weights(self, filepath, *args, **kwargs)

        monkeypatch.setattr(tfkd.Distiller, "save_weights", dies_on_third_save)
        backup = tfkd.callbacks.BackupAndRestore(tmp_path / "b", 5)
        assert _fit(backup)[2] is None
        monkeypatch.undo()
        state = json.loads((tmp_path / "b" / "backup_state.json").read_text())
        # The second save: 10 steps, batch 9 of epoch 0.
        assert (state["epoch"], state["batches_done"]) == (0, 10)
        _, probe, _ = _fit(tfkd.callbacks.BackupAndRestore(tmp_path / "b", 5))
        assert (probe.epoch, probe.iterations) == (0, 10)

    def test_keeps_the_backup_when_asked(self, tmp_path):
        _fit(
            tfkd.callbacks.BackupAndRestore(
                tmp_path / "b", delete_checkpoint=False
            )
        )
        state = json.loads((tmp_path / "b" / "backup_state.json").read_text())
        assert state == {
            "epoch": 3,
            "batches_done": 0,
            "weights": "epoch-3-batch-0.weights.h5",
            "scalars": {"alpha": FINAL_ALPHA, "temperature": FINAL_TEMPERATURE},
        }

    def test_unbuilt_model_is_refused(self, tmp_path):
        # A subclassed model: without a strategy, TensorFlow builds it at
        # the first step, after `on_train_begin`.
        class Linear(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(1)

            def call(self, inputs):
                return self.dense(inputs)

        model = Linear()
        model.compile("sgd", "mse")
        backup = tfkd.callbacks.BackupAndRestore(tmp_path / "b")
        with pytest.raises(ValueError, match="must be built by then"):
            model.fit(
                np.ones((4, 2)), np.ones((4, 1)), verbose=0, callbacks=[backup]
            )

    def test_unreadable_backup_is_refused(self, tmp_path):
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "backup_state.json").write_text(
            '{"epoch": 1, "batches_done": 0, "weights": "gone.weights.h5",'
            ' "scalars": {}}'
        )
        with pytest.raises(ValueError, match="Cannot resume from the backup"):
            _fit(tfkd.callbacks.BackupAndRestore(tmp_path / "b"))

    @pytest.mark.parametrize(
        "save_freq",
        [0, -5, True, "batch", 2.0],
        ids=["zero", "negative", "bool", "word", "float"],
    )
    def test_bad_save_freq_is_refused(self, save_freq):
        with pytest.raises(ValueError, match="`save_freq` must be"):
            tfkd.callbacks.BackupAndRestore("/tmp/b", save_freq=save_freq)

    def test_batch_backups_need_tensorflow(self, monkeypatch):
        monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
        with pytest.raises(ValueError, match="needs the TensorFlow backend"):
            tfkd.callbacks.BackupAndRestore("/tmp/b", save_freq=5)
        tfkd.callbacks.BackupAndRestore("/tmp/b", save_freq="epoch")

    @pytest.mark.parametrize("backup_dir", [None, 3], ids=["none", "int"])
    def test_backup_dir_type_is_checked(self, backup_dir):
        with pytest.raises(TypeError, match="`backup_dir` must be a str"):
            tfkd.callbacks.BackupAndRestore(backup_dir)

    def test_empty_backup_dir_is_refused(self):
        with pytest.raises(ValueError, match="must name a directory"):
            tfkd.callbacks.BackupAndRestore("")


class TestKerasBackupAndRestore:
    """`keras.callbacks.BackupAndRestore` (Keras 3.15) with the Distiller."""

    def test_batch_backup_trains_the_epochs_first_batches_twice(self, tmp_path):
        # Keras restores the weights after 20 steps but starts epoch 1 at
        # its first batch: 24 more steps, 44 in all. tfkd's callback exists
        # for this; if this test fails, Keras resumes mid-epoch itself.
        def backup():
            return keras.callbacks.BackupAndRestore(tmp_path / "b", 5)

        distiller, probe, _ = _interrupted_then_resumed(backup)
        assert (probe.epoch, probe.iterations) == (1, 20)
        assert int(distiller.optimizer.iterations.numpy()) == 44

    def test_epoch_backup_restores_temperature(self, tmp_path):
        # Epoch 0 ends at T = 1.5 (3 / 2) and is backed up; the restart
        # should halve 1.5, but halves the compile-time 3.0 that the
        # Python `temperature` still reports after the restore.
        def backup():
            return keras.callbacks.BackupAndRestore(tmp_path / "b")

        distiller, probe, _ = _interrupted_then_resumed(backup, schedule=_halve)
        assert (probe.epoch, probe.iterations) == (1, 12)
        assert distiller.temperature == 0.375

    def test_unbuilt_distiller_trains(self, tmp_path):
        distiller = worker.distiller(build=False)
        features, labels = worker.data()
        backup = keras.callbacks.BackupAndRestore(tmp_path / "b")
        distiller.fit(features, labels, epochs=1, verbose=0, callbacks=[backup])


_OWN_PROCESS = "TFKD_TEST_OWN_PROCESS"


def _run_in_own_process(test_id):
    env = dict(os.environ, **{_OWN_PROCESS: "1"})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::{test_id}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
