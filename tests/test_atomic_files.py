"""`tfkd._internal.atomic_files`: each non-model file tfkd writes, whole
or not at all."""

import json
import os
import socket

import keras
import numpy as np
import pytest

from tfkd._internal import atomic_files
from tfkd._internal import temp_files


def test_write_json_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    atomic_files.write_json(path, {"auc": np.float32(0.5)})
    atomic_files.write_json(path, {"auc": 0.75})
    assert json.loads(path.read_text()) == {"auc": 0.75}
    assert os.listdir(tmp_path) == ["results.json"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "spec.json"
    atomic_files.write_json(path, {"version": 1})

    def crash(temp_path):
        with open(temp_path, "w") as f:
            f.write('{"version": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_files.write_file(path, crash)
    assert json.loads(path.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["spec.json"]


def test_keras_save_through_a_suffixed_temporary(tmp_path):
    inputs = keras.Input((2,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    path = tmp_path / "student.keras"
    atomic_files.write_file(path, model.save, suffix=".keras")
    restored = keras.models.load_model(path)
    x = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(restored(x), model(x))
    assert os.listdir(tmp_path) == ["student.keras"]


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    path = tmp_path / "student.keras"
    # A pid far above any live one on this host, as a killed writer left.
    dead = (
        f".student.keras.abcdefgh.{socket.gethostname()}.4194303"
        f"{temp_files.TEMP_SUFFIX}.keras"
    )
    (tmp_path / dead).write_bytes(b"half")
    atomic_files.write_text(path, "x")
    assert os.listdir(tmp_path) == ["student.keras"]
