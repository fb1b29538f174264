"""Every file tfkd exports runs on TF Lite 2.14, the runtime apps pin.

The files are run with `export/run_tflite.py`, the app-side runner, under
tflite-runtime 2.14.0 (its own environment, `.venv-tflite214`, made by
`make test`) and under today's ai-edge-litert, and the outputs compared.
Where that runtime cannot be installed (its wheels stop at Python 3.11)
these tests skip and say so.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import retrieval_helpers
import tool_loading
from ai_edge_litert.interpreter import Interpreter
from keras import ops

from tfkd import datasets
from tfkd import export
from tfkd import models
from tfkd.export import runtime_target
from tfkd.export.pruning import prune_finetune
from tfkd.export.qat import quantization_aware_finetune

ROOT = pathlib.Path(__file__).parents[1]
RUN_TFLITE = ROOT / "export" / "run_tflite.py"
OLD_PYTHON = pathlib.Path(
    os.environ.get("TFKD_OLD_RUNTIME_PYTHON",
                   ROOT / ".venv-tflite214" / "bin" / "python")
)
NUM_REQUESTS = 64
# Float files: the same kernels up to summation order (measured 1.5e-8).
FLOAT_ATOL = 1e-5


@pytest.fixture(scope="module")
def old_python():
    probe = [str(OLD_PYTHON), "-c", "import tflite_runtime"]
    if not OLD_PYTHON.exists() or subprocess.run(probe).returncode:
        pytest.skip(
            f"tflite-runtime 2.14.0 is not installed at {OLD_PYTHON} "
            f"(`make test` installs it; its wheels need Python <= 3.11, "
            f"this is {sys.version.split()[0]}): files not run on TF Lite "
            "2.14"
        )
    return str(OLD_PYTHON)


def run_file(python, path, requests_path):
    """`run_tflite.py`'s JSON for the file, or its one-line error."""
    result = subprocess.run(
        [python, str(RUN_TFLITE), str(path), "--requests",
         str(requests_path)],
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode:
        return result.stderr.strip()
    return json.loads(result.stdout)


def output_step(path):
    """The quantization step of an int8 file's output; 0 for float."""
    interpreter = Interpreter(str(path))
    (output,) = interpreter.get_output_details()
    for op in interpreter._get_ops_details():
        if op["op_name"] == "DEQUANTIZE" and output["index"] in op["outputs"]:
            details = interpreter._get_tensor_details(op["inputs"][0], 0)
            return float(details["quantization"][0])
    return 0.0


def user_model(spec, divide):
    """A hand-built CTR model: dict inputs, plain Embeddings, a sigmoid.

    Its genres are pooled the way users write a masked mean: by `/`
    (`divide=True`) or with `keras.ops.mean` over the padded list.
    """
    inputs, vectors = {}, []
    for feature in spec.features:
        shape = (feature.length,) if feature.is_list else ()
        inputs[feature.name] = keras.Input(shape, dtype="int32",
                                           name=feature.name)
        rows = keras.layers.Embedding(feature.vocabulary_size, 6)(
            inputs[feature.name]
        )
        if feature.is_list and divide:
            mask = ops.expand_dims(
                ops.cast(inputs[feature.name] > 0, "float32"), -1
            )
            rows = ops.sum(rows * mask, axis=1) / ops.maximum(
                ops.sum(mask, axis=1), 1.0
            )
        elif feature.is_list:
            rows = ops.mean(rows, axis=1)
        vectors.append(rows)
    hidden = keras.layers.Dense(8, activation="relu")(
        keras.layers.Concatenate()(vectors)
    )
    model = keras.Model(
        inputs, keras.layers.Dense(1, activation="sigmoid")(hidden)
    )
    model.compile("adam", "binary_crossentropy")
    return model


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    keras.utils.set_random_seed(7)
    data = datasets.synthetic_movielens(task="ctr", seed=0)
    student = models.student(data.spec)
    student.compile("adam",
                    keras.losses.BinaryCrossentropy(from_logits=True))
    student.fit(data.train, epochs=1, verbose=0)
    directory = tmp_path_factory.mktemp("old_runtime")
    features = datasets.features_from_frame(
        data.frames["test"].head(NUM_REQUESTS), data.spec
    )
    requests = directory / "requests.json"
    requests.write_text(json.dumps({k: v.tolist()
                                    for k, v in features.items()}))
    return data, student, directory, requests


def _ranking_files(data, student, directory):
    common = {"validation_data": data.test, "latency_runs": 5,
              "allow_metric_drop": True}
    files = {}
    own = user_model(data.spec, divide=False)
    own.fit(data.train, epochs=1, verbose=0)
    for prefix, model, modes in (
        ("student", student, (None, "dynamic", "float16", "int8")),
        ("own", own, (None, "int8")),
    ):
        for mode in modes:
            extra = {"representative_data": data.train,
                     "num_calibration_batches": 5} if mode == "int8" else {}
            name = f"{prefix}_{mode or 'float32'}"
            files[name] = directory / f"{name}.tflite"
            export.to_tflite(model, files[name], quantization=mode,
                             **common, **extra)
    for name, finetune in (("qat", quantization_aware_finetune),
                           ("pruned", prune_finetune)):
        path = directory / f"student_{name}.tflite"
        finetune(student, student, data.train.take(4), path,
                 validation_data=data.test, num_calibration_batches=5,
                 allow_metric_drop=True)
        files[f"student_{name}"] = path
    return files


@pytest.fixture(scope="module")
def ranking_files(ctr):
    data, student, directory, _ = ctr
    return _ranking_files(data, student, directory)


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory):
    data, model = retrieval_helpers.trained_two_tower()
    directory = tmp_path_factory.mktemp("old_runtime_retrieval")
    users = datasets.features_from_frame(
        data.users.head(NUM_REQUESTS), data.spec,
        names=datasets.USER_FEATURES,
    )
    requests = directory / "users.json"
    requests.write_text(json.dumps({k: v.tolist() for k, v in users.items()}))
    files = {}
    for mode in (None, "dynamic", "int16_table", "int8_table"):
        path = directory / f"retrieval_{mode or 'float32'}.tflite"
        export.to_tflite_retrieval(model, data.items, path, k=10,
                                   quantization=mode, users=data.users,
                                   latency_runs=5, min_recall=0.0)
        files[mode or "float32"] = path
    return files, requests


RANKING = ["student_float32", "student_dynamic", "student_float16",
           "student_int8", "own_float32", "own_int8", "student_qat",
           "student_pruned"]


@pytest.mark.parametrize("name", RANKING)
def test_ranking_file_scores_the_same_on_tflite_2_14(old_python, ctr,
                                                     ranking_files, name):
    requests = ctr[3]
    today = run_file(sys.executable, ranking_files[name], requests)
    old = run_file(old_python, ranking_files[name], requests)
    assert isinstance(old, dict), f"{name} fails on TF Lite 2.14: {old}"
    assert set(old) == set(today)
    # int8 kernels may round one step apart (measured: one step, 8.8e-4).
    atol = FLOAT_ATOL + output_step(ranking_files[name])
    for kind in today:
        np.testing.assert_allclose(old[kind], today[kind], rtol=0,
                                   atol=atol)


@pytest.mark.parametrize("mode", ["float32", "dynamic", "int16_table",
                                  "int8_table"])
def test_retrieval_file_gives_the_same_top_k_on_tflite_2_14(old_python,
                                                            retrieval, mode):
    files, requests = retrieval
    today = run_file(sys.executable, files[mode], requests)
    old = run_file(old_python, files[mode], requests)
    assert isinstance(old, dict), f"{mode} fails on TF Lite 2.14: {old}"
    assert old["item_ids"] == today["item_ids"]
    np.testing.assert_allclose(old["scores"], today["scores"], rtol=0,
                               atol=FLOAT_ATOL)


def test_sidecar_records_the_target_and_the_files_ops(ranking_files):
    path = ranking_files["student_int8"]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["runtime"]["min_runtime"] == "2.14"
    assert sidecar["runtime"]["ops"] == runtime_target.file_ops(
        path.read_bytes()
    )
    ops = {entry["op"] for entry in sidecar["runtime"]["ops"]}
    # The masked mean of the genre list is a table lookup and a MUL.
    assert "DIV" not in ops and {"GATHER", "MUL"} <= ops


class TestDivisionUnderInt8:
    """A user's `/` in a full-int8 file: refused, and rightly so."""

    @pytest.fixture(scope="class")
    def dividing(self, ctr):
        data = ctr[0]
        model = user_model(data.spec, divide=True)
        model.fit(data.train, epochs=1, verbose=0)
        return model

    def _export(self, ctr, model, path, **kwargs):
        data = ctr[0]
        return export.to_tflite(
            model, path, quantization="int8",
            representative_data=data.train, num_calibration_batches=5,
            validation_data=data.test, latency_runs=5,
            allow_metric_drop=True, **kwargs,
        )

    def test_refused_before_writing_naming_op_and_runtime(self, ctr,
                                                          dividing,
                                                          tmp_path):
        path = tmp_path / "own.tflite"
        path.write_bytes(b"the previous file")
        with pytest.raises(runtime_target.RuntimeCompatibilityError) as e:
            self._export(ctr, dividing, path)
        message = str(e.value)
        assert "DIV on INT8 inputs" in message
        assert "TF Lite 2.14" in message and "min_runtime=None" in message
        assert "\n" not in message
        assert path.read_bytes() == b"the previous file"
        assert sorted(os.listdir(tmp_path)) == ["own.tflite"]

    def test_the_refusal_is_what_tflite_2_14_does(self, old_python, ctr,
                                                  dividing, tmp_path):
        # Written anyway with min_runtime=None, the file runs today and
        # fails on 2.14 at the first invoke: the table predicted it.
        path = tmp_path / "own.tflite"
        report = self._export(ctr, dividing, path, min_runtime=None)
        assert report.min_runtime == "latest"
        requests = ctr[3]
        assert isinstance(run_file(sys.executable, path, requests), dict)
        old = run_file(old_python, path, requests)
        assert isinstance(old, str) and "Div" in old, old


def test_probed_table_is_what_tflite_2_14_registers(old_python, tmp_path):
    table = tool_loading.load_tool("probe_runtime_ops").probe(
        old_python, "2.14"
    )
    assert table["max_version"] == runtime_target.registered_ops("2.14")
    assert table["runtime"] == "tflite-runtime 2.14.0"


class TestUnsupportedOps:
    def test_each_kind_of_problem_is_named(self):
        ops = [
            {"op": "FULLY_CONNECTED", "version": 99, "input_types": []},
            {"op": "STABLEHLO_ADD", "version": 1, "input_types": []},
            {"op": "CUSTOM:MyOp", "version": 1, "input_types": []},
            {"op": "DIV", "version": 1, "input_types": ["INT8"]},
            {"op": "DIV", "version": 1, "input_types": ["FLOAT32"]},
        ]
        problems = runtime_target.unsupported_ops(ops, "2.14")
        assert problems == [
            "CUSTOM:MyOp (a custom op: no stock runtime has it)",
            "DIV on INT8 inputs",
            "FULLY_CONNECTED version 99 (it has up to 10)",
            "STABLEHLO_ADD (not in that runtime)",
        ]
        assert runtime_target.unsupported_ops(ops, None) == []

    def test_unknown_target_is_refused(self):
        with pytest.raises(ValueError, match=r"min_runtime.*'2.13'"):
            runtime_target.validate_min_runtime("2.13")
