"""The files an export writes: permissions, a lock, and cleanup.

Regression tests for issue 11: exported files were created 0600 whatever
the umask, two exports to one path could leave one's model beside the
other's sidecar, and a killed export left its temporaries for good.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hashlib  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402

from tfkd import export  # noqa: E402
from tfkd._internal import temp_files  # noqa: E402
from tfkd.export import atomic_write  # noqa: E402
from tfkd.export.converter_utils import SAVED_MODEL_PREFIX  # noqa: E402
from tfkd.export.converter_utils import convert_keras_model  # noqa: E402


def _tiny_model(seed=0):
    ids = keras.Input((), dtype="int32", name="item_id")
    vectors = keras.layers.Embedding(
        4, 2, embeddings_initializer=keras.initializers.RandomNormal(
            seed=seed
        )
    )(ids)
    return keras.Model({"item_id": ids}, keras.layers.Dense(1)(vectors))


def _sidecar_of(content):
    return {"sha256": hashlib.sha256(content).hexdigest()}


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _dead_pid():
    # A child that has exited and been reaped: its pid is free.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


class TestPermissions:
    @pytest.mark.parametrize(
        "mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
        ids=["umask022", "umask077", "umask002"],
    )
    def test_files_follow_the_umask(self, umask, tmp_path, mask, mode):
        umask(mask)
        path = str(tmp_path / "m.tflite")
        atomic_write.write_verified(path, b"model", lambda t: {"a": 1})
        assert _mode(path) == mode
        assert _mode(export.sidecar_path(path)) == mode

    def test_to_tflite_files_are_0644_under_umask_022(self, umask,
                                                      tmp_path):
        report = export.to_tflite(
            _tiny_model(), str(tmp_path / "m.tflite"), latency_runs=1
        )
        assert _mode(report.path) == 0o644
        assert _mode(report.sidecar_path) == 0o644


class TestExportLock:
    def test_concurrent_writers_never_mix_model_and_sidecar(
        self, tmp_path, monkeypatch
    ):
        # Writer A sleeps between its two renames; B is held until A's
        # model is in place. Without the lock B then replaces both files
        # before A's sidecar lands: B's model beside A's sidecar.
        path = str(tmp_path / "m.tflite")
        a_model_in_place = threading.Event()
        real_replace = os.replace
        names = {}

        def slow_replace(source, destination):
            real_replace(source, destination)
            if destination == path and names.get(
                threading.get_ident()
            ) == "a":
                a_model_in_place.set()
                time.sleep(0.5)

        monkeypatch.setattr(atomic_write.os, "replace", slow_replace)
        barrier = threading.Barrier(2)
        errors = []

        def writer(name, content):
            names[threading.get_ident()] = name
            barrier.wait()
            if name == "b":
                time.sleep(0.05)

            def verify(temp):
                if name == "b":
                    a_model_in_place.wait(timeout=5)
                return _sidecar_of(content)

            try:
                atomic_write.write_verified(path, content, verify)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [
            threading.Thread(target=writer, args=("a", b"model A")),
            threading.Thread(target=writer, args=("b", b"model B")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with open(path, "rb") as f:
            content = f.read()
        with open(export.sidecar_path(path)) as f:
            sidecar = json.load(f)
        # B waited for A's whole write, so B's pair is what is left.
        assert content == b"model B"
        assert sidecar == _sidecar_of(content)
        assert sorted(os.listdir(tmp_path)) == ["m.json", "m.tflite"]

    def test_lock_file_is_beside_the_model_and_removed(self, tmp_path):
        path = str(tmp_path / "m.tflite")
        seen = []

        def verify(temp):
            seen.append(os.path.exists(path + ".lock"))
            return {}

        atomic_write.write_verified(path, b"model", verify)
        assert atomic_write.lock_path(path) == path + ".lock"
        assert seen == [True]
        assert not os.path.exists(path + ".lock")

    @pytest.mark.slow
    def test_two_processes_exporting_to_one_path(self, tmp_path):
        # Real processes, real to_tflite, started together: whichever
        # finishes last, its sidecar describes the model beside it.
        script = (
            "import sys, time, keras; from tfkd import export; "
            "keras.utils.set_random_seed(int(sys.argv[2])); "
            "i = keras.Input((), dtype='int32', name='item_id'); "
            "m = keras.Model({'item_id': i}, keras.layers.Dense(1)("
            "keras.layers.Embedding(50, 8)(i))); "
            "time.sleep(max(0.0, float(sys.argv[3]) - time.time())); "
            "export.to_tflite(m, sys.argv[1], latency_runs=200)"
        )
        path = str(tmp_path / "m.tflite")
        start = str(time.time() + 20)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script, path, str(seed), start],
                env=env, stderr=subprocess.PIPE,
            )
            for seed in (1, 2)
        ]
        for child in children:
            _, err = child.communicate(timeout=300)
            assert child.returncode == 0, err.decode()[-2000:]
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with open(export.sidecar_path(path)) as f:
            assert json.load(f)["sha256"] == digest


def _leftover(directory, name, host, pid):
    path = os.path.join(directory, f".{name}.abcd_123.{host}.{pid}.tmp")
    with open(path, "wb") as f:
        f.write(b"partial")
    return path


class TestCleanup:
    def test_removes_temporaries_of_dead_exports_only(self, tmp_path):
        host, directory = socket.gethostname(), str(tmp_path)
        dead = _dead_pid()
        dead_model = _leftover(directory, "m.tflite", host, dead)
        dead_sidecar = _leftover(directory, "m.json", host, dead)
        alive = _leftover(directory, "m.tflite", host, os.getpid())
        elsewhere = _leftover(directory, "m.tflite", "other-host", dead)
        other_model = _leftover(directory, "n.tflite", host, dead)
        # mkstemp's names (tfkd before the pid was embedded): no owner to
        # check, so they stay.
        legacy = os.path.join(directory, ".m.tflite.k2j3h4g5.tmp")
        open(legacy, "wb").close()
        atomic_write.write_verified(
            os.path.join(directory, "m.tflite"), b"model", lambda t: {}
        )
        remaining = set(os.listdir(directory))
        assert os.path.basename(dead_model) not in remaining
        assert os.path.basename(dead_sidecar) not in remaining
        for kept in (alive, elsewhere, other_model, legacy):
            assert os.path.basename(kept) in remaining

    def test_temp_names_carry_host_and_pid(self, tmp_path):
        fd, path = temp_files.create_temp_beside(str(tmp_path / "m.tflite"))
        os.close(fd)
        name = os.path.basename(path)
        assert name.startswith(".m.tflite.")
        assert name.endswith(f".{socket.gethostname()}.{os.getpid()}.tmp")

    def test_removes_saved_model_folders_of_dead_exports(
        self, tmp_path, monkeypatch
    ):
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        host = socket.gethostname()
        dead = tmp_path / f"{SAVED_MODEL_PREFIX}abcd_123.{host}.{_dead_pid()}"
        live = tmp_path / f"{SAVED_MODEL_PREFIX}abcd_124.{host}.{os.getpid()}"
        unrelated = tmp_path / f"{SAVED_MODEL_PREFIX}by_hand"
        for folder in (dead, live, unrelated):
            folder.mkdir()
            (folder / "saved_model.pb").write_bytes(b"partial")
        convert_keras_model(_tiny_model(), None, None, 1)
        assert sorted(os.listdir(tmp_path)) == sorted(
            [live.name, unrelated.name]
        )

    def test_owner_is_gone(self):
        host = socket.gethostname()
        assert temp_files.owner_is_gone(host, _dead_pid())
        assert not temp_files.owner_is_gone(host, os.getpid())
        assert not temp_files.owner_is_gone("other-host", _dead_pid())
