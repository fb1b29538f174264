"""Hashed id columns: one hash in tf, in tfkd's Python and in the app's.

A column too large for a vocabulary (a session, a device, a query) is
hashed: `1 + Fingerprint64(key) mod N`. Training hashes it in tf (both
loaders), the exporter's timing and `export/raw_values.py` in pure Python;
all must give every raw value the same id, and LiteRT scores of raw
values must equal Keras scores of the encoded rows.
"""

import importlib.util
import json
import os
import pathlib
import random

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tfkd import datasets  # noqa: E402
from tfkd import export  # noqa: E402
from tfkd import models  # noqa: E402
from tfkd.datasets import id_hashing  # noqa: E402
from tfkd.datasets import row_checks  # noqa: E402
from tfkd.datasets import spec_files  # noqa: E402
from tfkd.datasets import splits  # noqa: E402
from tfkd.datasets.file_encoding import map_values  # noqa: E402

EXPORT = pathlib.Path(__file__).parents[1] / "export"
BUCKETS = 512
NUM_ROWS = 2000
HASHED = {"session": BUCKETS, "tags": 64}
LISTS = {"tags": "|"}


def _module(name):
    spec = importlib.util.spec_from_file_location(name, EXPORT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tf_hash(data, buckets=2**63 - 1):
    return tf.strings.to_hash_bucket_fast(data, buckets).numpy().tolist()


def test_fingerprint64_is_tfs_hash_at_every_length():
    # Every branch of FarmHash: 0-16, 17-32, 33-64 bytes and the loop
    # past 64, with its last partial block at each offset.
    rng = random.Random(0)
    data = [bytes(rng.randrange(256) for _ in range(n))
            for n in [*range(0, 200), 255, 256, 257, 1000, 4096]]
    app = _module("raw_values")
    expected = _tf_hash(data)
    for d, want in zip(data, expected, strict=True):
        assert id_hashing.fingerprint64(d) % (2**63 - 1) == want, len(d)
        assert app.fingerprint64(d) == id_hashing.fingerprint64(d), len(d)


def test_fingerprint64_is_the_hash_guava_and_bigquery_give():
    # Guava's farmHashFingerprint64().hashString("alphabet", UTF_8).asLong()
    # and BigQuery's FARM_FINGERPRINT("alphabet"), as a signed 64-bit int.
    assert id_hashing.fingerprint64(b"alphabet") == (
        -2427165924636348523 % 2**64)


RAW = st.one_of(st.none(), st.integers(-(10**20), 10**20),
                st.text(max_size=80), st.floats(allow_nan=False,
                                                allow_infinity=False))


@given(st.lists(RAW, min_size=1, max_size=30),
       st.integers(1, 2**31 - 2))
def test_every_path_hashes_a_raw_value_to_the_same_id(values, buckets):
    feature = datasets.Feature("x", hash_buckets=buckets)
    app = _module("raw_values")
    library = [id_hashing.hashed_id(v, buckets) for v in values]
    assert map_values(np.array(values, object), feature).tolist() == library
    assert app.lookup(values, buckets) == library
    assert all(0 < i <= buckets for i, v in zip(library, values, strict=True)
               if id_hashing.hash_key(v) is not None)


def test_keys_hash_as_their_canonical_text():
    # "007", 7 and " 7 " are one id; missing cells are 0.
    ids = [id_hashing.hashed_id(v, 1000) for v in ("007", 7, " 7 ", 7.0)]
    assert len(set(ids)) == 1
    assert ids[0] == 1 + _tf_hash(["7"], 1000)[0]
    assert [id_hashing.hashed_id(v, 1000) for v in (None, "", " ",
                                                    float("nan"))] == [0] * 4


class TestFeature:
    def test_defaults_and_round_trip(self):
        feature = datasets.Feature("session", hash_buckets=1000)
        assert feature.vocabulary_size == 1001 and feature.is_mapped
        listed = datasets.Feature("tags", hash_buckets=64, length=4,
                                  separator="|")
        for f in (feature, listed):
            assert datasets.Feature(**f.to_dict()) == f
        spec = datasets.FeatureSpec((feature, listed), "ctr", "y", "binary")
        assert datasets.FeatureSpec.from_dict(spec.to_dict()) == spec

    @pytest.mark.parametrize("kwargs, match", [
        ({"hash_buckets": 0}, "int from 1 to"),
        ({"hash_buckets": True}, "int from 1 to"),
        ({"hash_buckets": 2**31}, "int from 1 to"),
        ({"hash_buckets": 10, "vocabulary": ("a",)}, "without a vocabulary"),
        ({"hash_buckets": 10, "vocabulary_size": 10}, "at least 11"),
        ({"hash_buckets": 10, "kind": "numeric"}, "hash_buckets"),
    ])
    def test_refused(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            datasets.Feature("s", **kwargs)


def session_log(num_rows=NUM_ROWS, seed=0):
    """A warehouse export: text users, session ids of which most recur a
    few times, tag lists, an empty session cell, clicks that depend on
    user and tags."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 80, num_rows)
    tags = [rng.integers(0, 20, rng.integers(0, 4)) for _ in range(num_rows)]
    logit = np.sin(user) + np.array([np.cos(t).sum() for t in tags])
    frame = pd.DataFrame({
        "user": [f"u{u:04d}" for u in user],
        "session": [f"s-{s:x}" for s in rng.integers(0, 700, num_rows)],
        "tags": ["|".join(f"tag{t}" for t in row) for row in tags],
        "clicked": (rng.random(num_rows) < 1 / (1 + np.exp(-logit))).astype(
            int),
    })
    frame.loc[3, "session"] = None
    return frame


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    work = tmp_path_factory.mktemp("sessions")
    log = session_log()
    log.to_csv(work / "log.csv", index=False)
    data = datasets.from_files(work / "log.csv", label="clicked",
                               list_columns=LISTS, hash_columns=HASHED)
    return {"work": work, "log": log, "data": data}


def _all_rows(data):
    return pd.concat([data.frames[k] for k in ("train", "val", "test")])


def test_from_files_hashes_the_columns_it_is_told(sessions):
    spec, log = sessions["data"].spec, sessions["log"]
    assert spec["session"].hash_buckets == BUCKETS
    assert spec["session"].vocabulary is None
    assert (spec["tags"].hash_buckets, spec["tags"].separator,
            spec["tags"].length) == (64, "|", 3)
    assert spec["user"].vocabulary is not None  # not named: a vocabulary
    # Every row's id is its raw value's hash, whatever split it fell in.
    rows = _all_rows(sessions["data"])
    assert sorted(rows["session"]) == sorted(
        id_hashing.hashed_id(v, BUCKETS) for v in log["session"])
    assert 0 in set(rows["session"])  # the empty cell


def test_stream_files_and_from_frame_hash_alike(sessions):
    data, log = sessions["data"], sessions["log"]
    streamed = datasets.stream_files(sessions["work"] / "log.csv",
                                     label="clicked", list_columns=LISTS,
                                     hash_columns=HASHED)
    # Hashing needs no counts: the spec differs only in the user
    # vocabulary of stream_files' own split.
    assert streamed.spec["session"] == data.spec["session"]
    assert streamed.spec["tags"] == data.spec["tags"]
    sessions_streamed, tags_streamed = [], []
    for part in (streamed.train, streamed.val, streamed.test):
        for features, _ in part:
            sessions_streamed += features["session"].numpy().tolist()
            tags_streamed += map(tuple, features["tags"].numpy().tolist())
    rows = _all_rows(data)
    assert sorted(sessions_streamed) == sorted(rows["session"])
    assert sorted(tags_streamed) == sorted(map(tuple, rows["tags"]))
    framed = datasets.from_frame(log, label="clicked", list_columns=LISTS,
                                 hash_columns=HASHED)
    assert framed.spec == data.spec
    pd.testing.assert_frame_equal(framed.frames["train"],
                                  data.frames["train"])


def test_a_spec_with_hash_buckets_reads_the_files_the_same(sessions,
                                                          tmp_path):
    data = sessions["data"]
    written = spec_files.save_spec(data.spec, tmp_path / "spec.json")
    spec = spec_files.load_spec(written[0])
    assert spec == data.spec
    again = datasets.from_files(sessions["work"] / "log.csv", spec=spec)
    pd.testing.assert_frame_equal(again.frames["test"], data.frames["test"])
    with pytest.raises(ValueError, match="`hash_columns` and the spec's hashed "
                       "features differ"):
        datasets.from_files(sessions["work"] / "log.csv", spec=spec,
                            hash_columns={"session": 7})


@pytest.mark.parametrize("hash_columns, error, match", [
    ({"session": 0}, ValueError, "an int from 1 to"),
    ({"clicked": 8}, ValueError, "label column 'clicked' cannot be"),
    ({"nope": 8}, ValueError, "has no hashed column 'nope'"),
    ([("session", 8)], TypeError, "must be a dict"),
])
def test_bad_hash_columns_are_refused(sessions, hash_columns, error, match):
    with pytest.raises(error, match=match):
        datasets.from_files(sessions["work"] / "log.csv", label="clicked",
                            hash_columns=hash_columns)


def test_fractional_numbers_are_not_hashed(tmp_path):
    frame = session_log(200).assign(price=np.linspace(0.5, 9.5, 200))
    frame.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(ValueError, match="'price' holds fractional numbers "
                       r"\(0.5 to 9.5\): hashing is for ids"):
        datasets.from_files(tmp_path / "p.csv", label="clicked",
                            hash_columns={"price": 64})


def test_a_column_too_large_for_a_vocabulary_names_hashing(
        sessions, monkeypatch):
    monkeypatch.setattr(row_checks, "MAX_INFERRED_VOCABULARY", 50)
    with pytest.raises(ValueError, match=r"Column 'session' holds [\d,]+ "
                       r"distinct values.*Hash it \(hash_columns="
                       r"\{'session': \d+\}, --hash-column session=\d+\)"):
        datasets.from_frame(sessions["log"], label="clicked",
                            list_columns=LISTS,
                            hash_columns={"tags": 64, "user": 256})


def hand_built(spec):
    """A user's model: plain Embeddings, the tag list mean-pooled."""
    inputs = {"user": keras.Input((), dtype="int32", name="user"),
              "session": keras.Input((), dtype="int32", name="session"),
              "tags": keras.Input((spec["tags"].length,), dtype="int32",
                                  name="tags")}
    user = keras.layers.Embedding(spec["user"].vocabulary_size, 8)(
        inputs["user"])
    session = keras.layers.Embedding(BUCKETS + 1, 4)(inputs["session"])
    tags = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(
        spec["tags"].vocabulary_size, 8)(inputs["tags"]))
    x = keras.layers.Concatenate()([user, session, tags])
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


@pytest.mark.parametrize("which", ["tfkd", "own"])
def test_raw_values_score_on_litert_as_keras_scores_the_rows(
        sessions, tmp_path, which):
    keras.utils.set_random_seed(0)
    data = sessions["data"]
    model = (models.student(data.spec) if which == "tfkd"
             else hand_built(data.spec))
    model.compile(optimizer="adam",
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(data.train, epochs=1, verbose=0)
    path = tmp_path / "hashed.tflite"
    report = export.to_tflite(model, path, validation_data=data.test)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    features = {f["name"]: f for f in sidecar["feature_spec"]["features"]}
    assert features["session"]["hash_buckets"] == BUCKETS
    assert report.lookup_invoke_us_p50 > 0
    # The raw rows of the first test examples, as the app has them.
    log = sessions["log"]
    test = log[splits.random_codes(len(log)) == 2]
    order = np.random.default_rng(42).permutation(len(log))
    raw = log.iloc[order[-len(test):]].head(20)
    requests = [{"user": r.user, "session": r.session, "tags": r.tags}
                for r in raw.itertuples()]
    requests.append({**requests[0], "session": "never-seen-s"})
    runner = _module("run_tflite")
    lite = runner.score(str(path), requests)
    encoded = datasets.features_from_frame(data.frames["test"].head(20),
                                           data.spec)
    expected = np.asarray(model.predict(encoded, verbose=0)).reshape(-1)
    np.testing.assert_allclose(lite[:20], expected, atol=1e-5)
    # A value never seen is hashed like any other: a bucket, not id 0.
    unseen = dict(encoded_row(encoded, 0),
                  session=np.array([id_hashing.hashed_id(
                      "never-seen-s", BUCKETS)], np.int32))
    assert lite[20] == pytest.approx(float(np.asarray(model.predict(
        unseen, verbose=0)).reshape(-1)[0]), abs=1e-5)


def encoded_row(encoded, i):
    return {k: v[i:i + 1] for k, v in encoded.items()}
