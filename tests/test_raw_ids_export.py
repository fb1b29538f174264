"""From a CSV of text ids to LiteRT scores of the app's raw ids.

The file takes ids; the sidecar carries the vocabularies and
`export/run_tflite.py` (the app-side runner) maps the raw values an app
has, on today's LiteRT and on TF Lite 2.14. Keras scores of the encoded
rows must equal LiteRT scores of the raw rows; an id training never saw,
and a null, score as unknown (id 0).
"""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_old_runtime import RUN_TFLITE  # noqa: E402
from test_old_runtime import old_python  # noqa: E402,F401
from test_old_runtime import output_step  # noqa: E402
from test_old_runtime import run_file  # noqa: E402

from tfkd import datasets  # noqa: E402
from tfkd import export  # noqa: E402
from tfkd import models  # noqa: E402
from tfkd.datasets import splits  # noqa: E402

NUM_ROWS = 3000
NUM_REQUESTS = 40
FLOAT_ATOL = 1e-5
COLUMNS = ("user", "sku", "hour", "price")


def shop_log(num_rows=NUM_ROWS, seed=0):
    """Text users and SKUs, the hour from 0, a float price, clicks that
    depend on them."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 120, num_rows)
    sku = rng.integers(0, 40, num_rows)
    hour = rng.integers(0, 24, num_rows)
    price = np.round(rng.gamma(2.0, 5.0, num_rows), 2)
    logit = (np.sin(user) + np.cos(sku * 1.7) + 0.4 * (hour > 17)
             - 0.05 * price)
    return pd.DataFrame({
        "user": [f"user-{u:04d}" for u in user],
        "sku": [f"SKU_{s:03d}" for s in sku],
        "hour": hour, "price": price,
        "clicked": (rng.random(num_rows) < 1 / (1 + np.exp(-logit))).astype(
            int),
    })


def hand_built(spec):
    """A user's own model: plain Embeddings on dict inputs, a logit."""
    inputs = {n: keras.Input((), dtype="int32", name=n)
              for n in ("user", "sku", "hour")}
    inputs["price"] = keras.Input((), dtype="float32", name="price")
    parts = [keras.layers.Embedding(spec[n].vocabulary_size, 8)(inputs[n])
             for n in ("user", "sku", "hour")]
    parts.append(keras.layers.Reshape((1,))(inputs["price"]))
    x = keras.layers.Dense(16, activation="relu")(
        keras.layers.Concatenate()(parts))
    return keras.Model(inputs, keras.layers.Dense(1)(x))


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    work = tmp_path_factory.mktemp("shop")
    log = shop_log()
    log.to_csv(work / "log.csv", index=False)
    data = datasets.from_files(work / "log.csv", label="clicked")
    test_mask = splits.random_codes(len(log)) == 2
    # The raw test rows, as the app has them, in the order of
    # data.frames["test"] (random_split's permutation).
    order = np.random.default_rng(42).permutation(len(log))
    raw_test = log.iloc[order[-test_mask.sum():]].reset_index(drop=True)
    return {"work": work, "log": log, "data": data, "raw_test": raw_test}


@pytest.fixture(scope="module")
def exported(shop):
    keras.utils.set_random_seed(0)
    data = shop["data"]
    files = {}
    for name, model in (("tfkd", models.student(data.spec)),
                        ("own", hand_built(data.spec))):
        model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(
            from_logits=True))
        model.fit(data.train, epochs=2, verbose=0)
        for quantization in (None, "int8"):
            path = shop["work"] / f"{name}_{quantization or 'float32'}.tflite"
            report = export.to_tflite(
                model, path, quantization=quantization,
                representative_data=data.train, validation_data=data.test,
                feature_spec=data.spec, allow_metric_drop=True,
            )
            files[(name, quantization)] = (model, path, report)
    return files


def app_runner():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_tflite", RUN_TFLITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_requests(shop):
    rows = shop["raw_test"].iloc[:NUM_REQUESTS]
    return [{c: (row[c].item() if hasattr(row[c], "item") else row[c])
             for c in COLUMNS} for _, row in rows.iterrows()]


def keras_scores(model, shop):
    features = datasets.features_from_frame(
        shop["data"].frames["test"].iloc[:NUM_REQUESTS], shop["data"].spec)
    return np.asarray(model.predict(features, verbose=0)).reshape(-1)


@pytest.mark.parametrize("name", ["tfkd", "own"])
@pytest.mark.parametrize("quantization", [None, "int8"])
def test_raw_ids_score_as_keras_scores_the_encoded_rows(
        shop, exported, name, quantization):
    model, path, report = exported[(name, quantization)]
    runner = app_runner()
    lite = runner.score(str(path), raw_requests(shop))
    expected = keras_scores(model, shop)
    if quantization is None:
        np.testing.assert_allclose(lite, expected, atol=FLOAT_ATOL)
    # The lookup is exact: raw ids score as the encoded ids do in the file
    # (int8 against Keras is the exporter's parity check).
    encoded = datasets.features_from_frame(
        shop["data"].frames["test"].iloc[:NUM_REQUESTS], shop["data"].spec)
    by_ids = runner.run(str(path), {k: v.tolist() for k, v in
                                    encoded.items()},
                        dict(runner.load_sidecar(str(path)),
                             feature_spec=None))
    np.testing.assert_array_equal(lite,
                                  next(iter(by_ids.values())).reshape(-1))
    # The request an app makes, lookups included, is timed at export.
    assert report.lookup_invoke_us_p50 > 0
    sidecar = json.loads(path.with_suffix(".json").read_text())
    features = {f["name"]: f for f in sidecar["feature_spec"]["features"]}
    assert features["user"]["vocabulary"][0].startswith("user-")
    assert sorted(features["hour"]["vocabulary"]) == list(range(24))
    assert sidecar["metrics"]["lookup_invoke_us_p50"] > 0


@pytest.mark.parametrize("name", ["tfkd", "own"])
def test_unseen_and_missing_ids_score_as_unknown(shop, exported, name):
    _, path, _ = exported[(name, None)]
    runner = app_runner()
    known = raw_requests(shop)[0]
    unknown = [{**known, "user": user}
               for user in ("user-9999", None, "", "never seen")]
    scores = runner.score(str(path), [known, *unknown])
    assert len(set(scores[1:].tolist())) == 1
    assert scores[0] != scores[1]
    # Unknown is id 0 in the file: the same score as id 0 itself.
    spec = shop["data"].spec
    encoded = datasets.features_from_frame(
        shop["data"].frames["test"].iloc[:1], spec)
    encoded["user"] = np.zeros(1, np.int32)
    sidecar = runner.load_sidecar(str(path))
    by_ids = runner.run(str(path), {k: v.tolist() for k, v in
                                    encoded.items()},
                        dict(sidecar, feature_spec=None))
    assert next(iter(by_ids.values())).reshape(-1)[0] == pytest.approx(
        scores[1], abs=1e-6)


def test_text_ids_need_the_sidecar_vocabulary(shop, exported):
    _, path, _ = exported[("tfkd", None)]
    runner = app_runner()
    sidecar = dict(runner.load_sidecar(str(path)), feature_spec=None)
    with pytest.raises(ValueError, match="Expected integer ids for "
                       "'(user|sku)' \\(its sidecar feature has no "
                       "vocabulary or hash buckets\\)"):
        runner.run(str(path), raw_requests(shop)[:2], sidecar)


@pytest.mark.parametrize("quantization", [None, "int8"])
def test_raw_ids_on_tf_lite_2_14(shop, exported, old_python, tmp_path,  # noqa: F811
                                 quantization):
    _, path, _ = exported[("own", quantization)]
    first = raw_requests(shop)[0]
    raw = raw_requests(shop) + [{**first, "user": "new"},
                                {**first, "user": None}]
    (tmp_path / "raw.json").write_text(json.dumps(raw))
    # The same requests as model ids, with a sidecar that has no
    # vocabularies: what the lookup must produce.
    encoded = datasets.features_from_frame(
        shop["data"].frames["test"].iloc[:NUM_REQUESTS], shop["data"].spec)
    ids = [{k: v[i].item() for k, v in encoded.items()}
           for i in range(NUM_REQUESTS)]
    ids += [{**ids[0], "user": 0}] * 2
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    sidecar = json.loads(path.with_suffix(".json").read_text())
    (tmp_path / "plain.json").write_text(json.dumps(
        dict(sidecar, feature_spec=None)))
    old = run_file(old_python, path, tmp_path / "raw.json")
    assert isinstance(old, dict), old
    old_ids = subprocess.run(
        [old_python, str(RUN_TFLITE), str(path), "--requests",
         str(tmp_path / "ids.json"), "--sidecar", str(tmp_path / "plain.json")],
        capture_output=True, text=True, timeout=120, check=True)
    assert old["logits"] == json.loads(old_ids.stdout)["logits"]
    assert old["logits"][-1] == old["logits"][-2]
    today = run_file(sys.executable, path, tmp_path / "raw.json")
    if quantization is None:
        np.testing.assert_allclose(old["logits"], today["logits"],
                                   atol=FLOAT_ATOL)
    else:
        # int8 kernels of the two runtimes may round apart by an output
        # step or a few (tests/test_old_runtime.py measures them).
        step = output_step(path)
        diff = np.abs(np.subtract(old["logits"], today["logits"]))
        assert np.median(diff) <= 1.01 * step


def test_spec_comes_with_tfkd_data_when_not_passed(shop, exported, tmp_path):
    # The notebook call without feature_spec: the loader's spec rides on
    # data.test, so the sidecar still carries the vocabularies.
    model, _, _ = exported[("own", None)]
    path = tmp_path / "plain_call.tflite"
    export.to_tflite(model, path, validation_data=shop["data"].test)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["feature_spec"] == shop["data"].spec.to_dict()
    runner = app_runner()
    np.testing.assert_allclose(runner.score(str(path), raw_requests(shop)),
                               keras_scores(model, shop), atol=FLOAT_ATOL)
    streamed = datasets.stream_files(shop["work"] / "log.csv",
                                     spec=shop["data"].spec)
    assert datasets.pipelines.spec_of(streamed.val) is shop["data"].spec
