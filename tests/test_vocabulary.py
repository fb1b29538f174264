"""Raw ids as they come: text, ids from 0, negative and sparse 64-bit ids,
empty cells; vocabularies built from the training rows, a DataFrame source,
labels that cannot be measured."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tfkd import datasets  # noqa: E402
from tfkd.datasets import splits  # noqa: E402
from tfkd.datasets import vocabulary  # noqa: E402

NUM_ROWS = 600


def warehouse_frame(num_rows=NUM_ROWS, seed=0):
    """A log as a warehouse exports it: text user ids, an hour from 0,
    negative and 64-bit item ids, a zip code with leading zeros, a price."""
    rng = np.random.default_rng(seed)
    # Popular users first: u00000 is the most frequent.
    user = np.minimum(rng.geometric(0.08, num_rows) - 1, 59)
    return pd.DataFrame({
        "user": [f"u{u:05d}" for u in user],
        "hour": rng.integers(0, 24, num_rows),
        "offset": rng.integers(-3, 3, num_rows),
        "item": rng.choice([7, 2**40 + 1, 10**18 - 1, 5 * 10**17], num_rows),
        "hash": rng.choice([2**62 + 3, 2**63 - 1], num_rows),
        "zip": [f"{z:05d}" for z in rng.integers(0, 40, num_rows)],
        "price": np.round(rng.gamma(2.0, 5.0, num_rows), 2),
        "clicked": rng.integers(0, 2, num_rows),
    })


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    frame = warehouse_frame()
    frame.loc[[3, 10], "user"] = ""  # empty cells
    path = tmp_path_factory.mktemp("warehouse") / "log.csv"
    frame.to_csv(path, index=False)
    return {"frame": frame, "path": str(path),
            "data": datasets.from_files(path, label="clicked")}


def train_rows(frame, seed=42):
    return frame[splits.random_codes(len(frame), seed=seed) == 0]


class TestCanonical:
    @pytest.mark.parametrize("value, key", [
        (" 007 ", 7), ("+7", 7), (7, 7), (np.int64(7), 7), (7.0, 7),
        ("-0", 0), ("u42", "u42"), (" u42 ", "u42"), (b"u42", "u42"),
        ("3.5", "3.5"), (3.5, "3.5"), (True, 1),
        ("", None), ("   ", None), (None, None), (float("nan"), None),
        (10**18 - 1, 10**18 - 1), (10**18, "1000000000000000000"),
        ("0001000000000000000000", "1000000000000000000"),
    ])
    def test_keys(self, value, key):
        assert vocabulary.canonical(value) == key

    def test_lookup_maps_unknown_and_missing_to_0(self):
        ids = vocabulary.lookup(["u2", "u9", None, "", " u1"], ("u1", "u2"))
        np.testing.assert_array_equal(ids, [2, 0, 0, 0, 1])
        assert ids.dtype == np.int32
        # Text vocabularies hold whole numbers as text: 7 matches "007".
        np.testing.assert_array_equal(
            vocabulary.lookup([7, "007", "x"], ("7", "x")), [1, 1, 2]
        )
        np.testing.assert_array_equal(
            vocabulary.lookup(["7", 8, "x"], (8, 7)), [2, 1, 0]
        )

    @given(st.lists(st.sampled_from(["a", "b", "c", "7", "007", ""]),
                    min_size=1, max_size=60),
           st.integers(1, 7))
    def test_vocabulary_does_not_depend_on_chunks(self, cells, chunk):
        whole = vocabulary.ValueCounts()
        whole.add(np.array(cells, object))
        chunked = vocabulary.ValueCounts()
        for start in range(0, len(cells), chunk):
            chunked.add(np.array(cells[start:start + chunk], object))
        assert chunked.vocabulary() == whole.vocabulary()
        counts = {}
        text = any(isinstance(k, str) for k in whole.keys())
        for key, count in whole.keys().items():
            key = str(key) if text else key
            counts[key] = counts.get(key, 0) + count
        # Most frequent first, ties in value order.
        order = [(-counts[k], k) for k in whole.vocabulary()]
        assert order == sorted(order)


class TestInferredVocabularies:
    def test_each_kind_of_raw_id_gets_a_vocabulary(self, warehouse):
        spec = warehouse["data"].spec
        for name in ("user", "hour", "offset", "item", "hash", "zip"):
            assert spec[name].vocabulary is not None, name
            assert spec[name].vocabulary_size == len(spec[name].vocabulary) + 1
        assert spec["price"].is_numeric
        assert isinstance(spec["user"].vocabulary[0], str)
        # Whole numbers stay numbers: hours, negative offsets, 64-bit ids,
        # zip codes with their leading zeros read as the number.
        assert sorted(spec["hour"].vocabulary) == list(range(24))
        assert sorted(spec["offset"].vocabulary) == [-3, -2, -1, 0, 1, 2]
        assert set(spec["item"].vocabulary) == {7, 2**40 + 1, 10**18 - 1,
                                                5 * 10**17}
        # 19 digits and more: text, as an app holding an id in 64 bits
        # could not tell them from numbers past int64.
        assert set(spec["hash"].vocabulary) == {str(2**62 + 3),
                                                str(2**63 - 1)}
        assert 0 in spec["zip"].vocabulary or 1 in spec["zip"].vocabulary

    def test_most_frequent_training_value_is_id_1(self, warehouse):
        frame, spec = warehouse["frame"], warehouse["data"].spec
        counts = train_rows(frame)["user"].replace("", np.nan).value_counts()
        assert spec["user"].vocabulary[0] == counts.index[0]
        assert set(spec["user"].vocabulary) == set(counts.index)

    def test_encoded_ids_are_the_lookup_and_empty_cells_unknown(
            self, warehouse):
        frame, data = warehouse["frame"], warehouse["data"]
        encoded = pd.concat([data.frames[n] for n in ("train", "val",
                                                      "test")])
        order = np.random.default_rng(42).permutation(len(frame))
        raw = frame.iloc[order]
        for name in ("user", "hour", "offset", "item", "hash", "zip"):
            expected = vocabulary.lookup(raw[name].to_numpy(),
                                         data.spec[name].vocabulary)
            np.testing.assert_array_equal(encoded[name].to_numpy(), expected)
        assert encoded["user"].dtype == np.int32
        # The two empty cells are unknown, wherever they landed.
        assert (encoded["user"].to_numpy()[np.isin(order, [3, 10])] == 0).all()

    def test_value_only_in_test_rows_is_unknown(self, tmp_path):
        frame = warehouse_frame()
        test = np.flatnonzero(splits.random_codes(len(frame)) == 2)[0]
        frame.loc[test, "user"] = "only-in-test"
        frame.to_csv(tmp_path / "x.csv", index=False)
        data = datasets.from_files(tmp_path / "x.csv", label="clicked")
        assert "only-in-test" not in data.spec["user"].vocabulary

    def test_min_count_and_max_tokens(self, warehouse):
        path = warehouse["path"]
        full = warehouse["data"].spec["user"].vocabulary
        capped = datasets.from_files(path, label="clicked", max_tokens=5)
        assert capped.spec["user"].vocabulary == full[:5]
        assert capped.spec["hour"].vocabulary_size == 6
        counts = train_rows(warehouse["frame"])["user"].value_counts()
        common = datasets.from_files(path, label="clicked", min_count=10)
        assert set(common.spec["user"].vocabulary) == set(
            counts[counts >= 10].index) - {""}
        # Rare users read as unknown, so the model trains row 0.
        assert (common.frames["train"]["user"] == 0).sum() >= (
            counts[counts < 10].sum())
        with pytest.raises(ValueError, match="`min_count` must be >= 1"):
            datasets.from_files(path, label="clicked", min_count=0)
        with pytest.raises(TypeError, match="`max_tokens` must be an int"):
            datasets.from_files(path, label="clicked", max_tokens=2.5)

    def test_ids_from_1_keep_their_values(self, tmp_path):
        frame = warehouse_frame()[["price", "clicked"]].assign(
            user=np.arange(NUM_ROWS) % 50 + 1)
        frame.to_csv(tmp_path / "x.csv", index=False)
        data = datasets.from_files(tmp_path / "x.csv", label="clicked")
        assert data.spec["user"].vocabulary is None
        assert data.spec["user"].vocabulary_size == 51
        assert sorted(data.frames["train"]["user"].unique()) == list(
            range(1, 51))

    def test_spec_round_trips_and_maps_new_values_to_unknown(
            self, warehouse, tmp_path):
        spec = warehouse["data"].spec
        written = json.loads(json.dumps(spec.to_dict()))
        again = datasets.FeatureSpec.from_dict(written)
        assert again == spec
        other = warehouse_frame(seed=1)
        other.loc[0, "user"] = "u-new"
        other.to_csv(tmp_path / "other.csv", index=False)
        data = datasets.from_files(tmp_path / "other.csv", spec=again)
        assert data.spec is again
        encoded = pd.concat(data.frames.values())
        assert encoded["user"].max() < spec["user"].vocabulary_size
        order = np.random.default_rng(42).permutation(len(other))
        assert encoded["user"].to_numpy()[np.flatnonzero(order == 0)[0]] == 0

    def test_text_in_a_numeric_column_is_still_refused(self, tmp_path):
        frame = warehouse_frame().astype({"price": object})
        frame.loc[5, "price"] = "n/a"
        frame.to_csv(tmp_path / "x.csv", index=False)
        with pytest.raises(ValueError, match="x.csv row 7, column 'price' is "
                           "not a number: 'n/a': a numeric column needs a "
                           "number in every row"):
            datasets.from_files(tmp_path / "x.csv", label="clicked")


class TestFromFrame:
    def test_same_data_as_the_csv(self, warehouse):
        frame = warehouse["frame"].copy()
        frame["user"] = frame["user"].replace("", None)
        data = datasets.from_frame(frame, label="clicked")
        assert data.spec == warehouse["data"].spec
        for name in ("train", "val", "test"):
            pd.testing.assert_frame_equal(data.frames[name],
                                          warehouse["data"].frames[name])

    def test_nullable_integers_and_a_given_spec(self, warehouse):
        frame = warehouse["frame"][["hour", "clicked"]].astype(
            {"hour": "Int64"})
        frame.loc[4, "hour"] = pd.NA
        data = datasets.from_frame(frame, label="clicked")
        assert sorted(data.spec["hour"].vocabulary) == list(range(24))
        spec = warehouse["data"].spec
        again = datasets.from_frame(warehouse["frame"].assign(user="u-new"),
                                    spec=spec)
        assert (pd.concat(again.frames.values())["user"] == 0).all()

    @pytest.mark.parametrize("frame, error, match", [
        ([1, 2], TypeError, "must be a pandas DataFrame"),
        (pd.DataFrame({"a": [[1, 2], [3]] * 5, "clicked": [0, 1] * 5}),
         ValueError, "frame index 0, column 'a' holds a list"),
        (pd.DataFrame({0: [1, 2] * 5, "clicked": [0, 1] * 5}), TypeError,
         "column name must be a str"),
        (pd.DataFrame({"a": [1] * 10, "clicked": ["yes", "no"] * 5}),
         ValueError, "Column 'clicked' \\(the label\\) holds text "
         "\\(frame index 0: 'yes'\\)"),
        (pd.DataFrame({"a": [1], "b": [2]}), ValueError,
         "The frame has no label column 'clicked'. Its columns: a, b"),
    ], ids=["not_a_frame", "list_cells", "int_column_name", "text_label",
            "no_label"])
    def test_refused_with_the_fix(self, frame, error, match):
        with pytest.raises(error, match=match):
            datasets.from_frame(frame, label="clicked")


class TestLabelsThatMeasureNothing:
    @pytest.mark.parametrize("labels, task, match", [
        ([1] * 40, "ctr", "column 'clicked' \\(the label\\) is 1 on all 40 "
         "rows: a model learns nothing from it"),
        ([4.0] * 40, "rating", "is 4 on all 40 rows"),
        ([1, 1] + [0] * 38, "ctr", "has 2 positives and 38 negatives: AUC "
         "needs positives and negatives in val and test, so at least 3"),
        ([0, 0] + [1] * 38, "ctr", "has 38 positives and 2 negatives"),
    ], ids=["single_click_value", "single_rating", "two_positives",
            "two_negatives"])
    def test_refused_before_training(self, tmp_path, labels, task, match):
        frame = pd.DataFrame({"user": np.arange(40) % 7 + 1,
                              "clicked": labels})
        frame.to_csv(tmp_path / "x.csv", index=False)
        for load in (datasets.from_files, datasets.stream_files):
            with pytest.raises(ValueError, match=match):
                load(tmp_path / "x.csv", label="clicked", task=task)


def encoded_rows(data):
    """Every split's encoded rows, sorted, as one frame."""
    parts = []
    for split in (data.train, data.val, data.test):
        for features, label in split:
            part = {k: v.numpy() for k, v in features.items()}
            part["label"] = label.numpy()
            parts.append(pd.DataFrame(part))
    frame = pd.concat(parts)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def warehouse_shards(tmp_path_factory):
    frame = warehouse_frame(900)
    frame.loc[[3, 400], "user"] = ""
    folders = {}
    for fmt in ("csv", "parquet"):
        folder = tmp_path_factory.mktemp(fmt)
        for k in range(3):
            part = frame.iloc[k * 300:(k + 1) * 300]
            if fmt == "csv":
                part.to_csv(folder / f"part-{k}.csv", index=False)
            else:
                part.assign(user=part["user"].replace("", None)).to_parquet(
                    folder / f"part-{k}.parquet", index=False)
        folders[fmt] = str(folder)
    return folders


class TestStreamed:
    def test_csv_and_parquet_infer_one_spec_however_chunked(
            self, warehouse_shards):
        specs = [
            datasets.stream_files(warehouse_shards[fmt], label="clicked",
                                  chunk_rows=chunk).spec
            for fmt in ("csv", "parquet") for chunk in (70, 100_000)
        ]
        # (The price's moments merge over chunks to the last digit or so.)
        vocabularies = [[f.vocabulary for f in spec.features]
                        for spec in specs]
        assert all(v == vocabularies[0] for v in vocabularies)
        assert specs[0]["user"].vocabulary[0].startswith("u")

    @pytest.mark.parametrize("fmt", ["csv", "parquet"])
    def test_streamed_ids_are_from_files_ids(self, warehouse_shards, fmt):
        # One spec for both: then every row must encode the same way.
        spec = datasets.from_files(warehouse_shards["csv"],
                                   label="clicked").spec
        loaded = datasets.from_files(warehouse_shards[fmt], spec=spec)
        streamed = datasets.stream_files(warehouse_shards[fmt], spec=spec,
                                         chunk_rows=70)
        rows = encoded_rows(streamed)
        expected = pd.concat(loaded.frames.values()).rename(
            columns={"clicked": "label"})[list(rows.columns)]
        expected = expected.sort_values(list(rows.columns)).reset_index(
            drop=True)
        pd.testing.assert_frame_equal(rows, expected, check_dtype=False)
        assert (rows["user"] == 0).sum() == 2  # the empty cells


GENRES = ("Action", "Comedy", "Drama", "Horror", "Sci-Fi")


def movie_log(num_rows=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user": [f"u{u}" for u in rng.integers(0, 30, num_rows)],
        "genres": ["|".join(rng.choice(GENRES, rng.integers(0, 4),
                                       replace=False))
                   for _ in range(num_rows)],
        "clicked": rng.integers(0, 2, num_rows),
    })


class TestListColumns:
    @pytest.fixture(scope="class")
    def movies(self, tmp_path_factory):
        folder = tmp_path_factory.mktemp("movies")
        frame = movie_log()
        frame.loc[5, "genres"] = " Drama || Comedy "  # spaces, a blank
        frame.to_csv(folder / "log.csv", index=False)
        frame.to_parquet(folder.parent / "movies.parquet", index=False)
        data = datasets.from_files(folder / "log.csv", label="clicked",
                                   list_columns={"genres": "|"})
        return {"frame": frame, "folder": str(folder), "data": data,
                "parquet": str(folder.parent / "movies.parquet")}

    def test_list_feature_with_a_vocabulary(self, movies):
        feature = movies["data"].spec["genres"]
        assert feature.is_list and feature.separator == "|"
        assert feature.length == 3  # the longest list
        assert sorted(feature.vocabulary) == sorted(GENRES)
        assert feature.vocabulary_size == len(GENRES) + 1

    def test_ids_are_the_values_looked_up_and_padded(self, movies):
        frame, data = movies["frame"], movies["data"]
        vocab = data.spec["genres"].vocabulary
        order = np.random.default_rng(42).permutation(len(frame))
        encoded = np.stack(pd.concat(data.frames.values())["genres"])
        for row, i in zip(encoded, order, strict=True):
            values = [g.strip() for g in frame["genres"][i].split("|")
                      if g.strip()]
            expected = [vocab.index(g) + 1 for g in values]
            assert row.tolist() == expected + [0] * (3 - len(expected))

    def test_every_source_encodes_the_same(self, movies):
        data = movies["data"]
        spec = data.spec
        as_lists = movies["frame"].assign(genres=[
            [g for g in cell.split("|")] for cell in movies["frame"]["genres"]
        ])
        framed = datasets.from_frame(as_lists, label="clicked",
                                     list_columns={"genres": "|"})
        assert framed.spec == spec
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(
                np.stack(framed.frames[name]["genres"]),
                np.stack(data.frames[name]["genres"]))
        loaded = pd.concat(data.frames.values())
        expected = np.stack(loaded["genres"])
        for path in (movies["folder"], movies["parquet"]):
            streamed = datasets.stream_files(path, spec=spec, chunk_rows=70)
            rows = np.concatenate([x["genres"].numpy() for split in
                                   (streamed.train, streamed.val,
                                    streamed.test) for x, _ in split])
            assert sorted(map(tuple, rows)) == sorted(map(tuple, expected))

    def test_a_model_trains_and_the_app_sends_the_text(self, movies,
                                                        tmp_path):
        import importlib.util

        import keras

        from tfkd import export
        from tfkd import models

        data = movies["data"]
        student = models.student(data.spec)
        student.compile("adam",
                        keras.losses.BinaryCrossentropy(from_logits=True))
        student.fit(data.train, epochs=1, verbose=0)
        path = tmp_path / "movies.tflite"
        export.to_tflite(student, path, feature_spec=data.spec,
                         validation_data=data.test)
        spec = importlib.util.spec_from_file_location(
            "run_tflite", os.path.join(os.path.dirname(__file__), "..",
                                       "export", "run_tflite.py"))
        runner = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(runner)
        scores = runner.score(str(path), [
            {"user": "u3", "genres": "Comedy|Drama"},
            {"user": "u3", "genres": ["Drama", "Comedy"]},
            {"user": "u3", "genres": "Drama|Comedy|Unheard-of"},
            {"user": "u3", "genres": "Horror"},
        ])
        # Pooled: order does not matter, an unknown value is ignored.
        assert scores[0] == scores[1] == scores[2]
        assert scores[3] != scores[0]

    def test_refusals(self, movies, tmp_path):
        path = os.path.join(movies["folder"], "log.csv")
        with pytest.raises(ValueError, match="has no list column 'tags'. "
                           "Its columns: user, genres, clicked"):
            datasets.from_files(path, label="clicked",
                                list_columns={"tags": ","})
        with pytest.raises(ValueError, match="separator of list column "
                           "'genres' must be a non-empty str"):
            datasets.from_files(path, label="clicked",
                                list_columns={"genres": ""})
        spec = movies["data"].spec
        longer = movies["frame"].copy()
        longer.loc[0, "genres"] = "Action|Comedy|Drama|Horror"
        longer.to_csv(tmp_path / "longer.csv", index=False)
        with pytest.raises(ValueError, match="longer.csv row 2, column "
                           "'genres' holds 4 values: the spec's list feature "
                           "'genres' takes at most 3"):
            datasets.from_files(tmp_path / "longer.csv", spec=spec)
        with pytest.raises(ValueError, match="`list_columns` and the spec's "
                           "list features differ"):
            datasets.from_files(path, spec=spec, list_columns={"genres": ","})
        # Without the declaration the cell is one text id, as written.
        plain = datasets.from_files(path, label="clicked")
        assert plain.spec["genres"].separator is None


class TestSpecFiles:
    def test_large_vocabularies_go_beside_the_spec(self, warehouse,
                                                   tmp_path):
        from tfkd.datasets import spec_files

        spec = warehouse["data"].spec
        path = tmp_path / "spec.json"
        written = spec_files.save_spec(spec, path, inline_values=45)
        # user (48 values) gets a file; zip (40) stays inline.
        assert written == [str(tmp_path / "spec.vocabularies" / "user.jsonl"),
                           str(path)]
        config = json.loads(path.read_text())
        entries = {e["name"]: e for e in config["features"]}
        assert entries["user"]["vocabulary_file"] == (
            "spec.vocabularies/user.jsonl")
        assert "vocabulary" not in entries["user"]
        assert len(entries["hour"]["vocabulary"]) == 24
        assert spec_files.load_spec(path) == spec
        lines = (tmp_path / "spec.vocabularies" / "user.jsonl").read_text()
        assert lines.splitlines()[0] == json.dumps(spec["user"].vocabulary[0])

    def test_cli_spec_out_and_spec_read_the_files(self, warehouse, tmp_path,
                                                  monkeypatch, capsys):
        from tfkd.cli import data as cli_data
        from tfkd.datasets import spec_files

        monkeypatch.setattr(spec_files, "INLINE_VALUES", 45)
        path = str(tmp_path / "spec.json")
        cli_data.write_spec(warehouse["data"].spec, path)
        printed = capsys.readouterr().out
        assert ("Feature spec written to " + path + ", 1 vocabularies in "
                + str(tmp_path / "spec.vocabularies")) in printed
        assert cli_data.read_spec(path) == warehouse["data"].spec
        (tmp_path / "spec.vocabularies" / "user.jsonl").unlink()
        with pytest.raises(cli_data.CommandError, match="is not a feature "
                           "spec: .*user.jsonl"):
            cli_data.read_spec(path)


def test_timestamps_and_row_ids_are_not_taken_for_ids(tmp_path):
    frame = warehouse_frame()[["user", "clicked"]].assign(
        ts=1_600_000_000 + np.arange(NUM_ROWS) * 7,
        event=[f"evt-{i}" for i in range(NUM_ROWS)])
    frame.to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match="Column 'ts' holds 480 distinct "
                       "values in 480 training rows: almost every row its "
                       "own id"):
        datasets.from_files(tmp_path / "x.csv", label="clicked")
    frame.drop(columns="ts").to_csv(tmp_path / "y.csv", index=False)
    with pytest.raises(ValueError, match="Column 'event' holds 480 "
                       "distinct values"):
        datasets.from_files(tmp_path / "y.csv", label="clicked")
    # A user seen many times is an id worth a row of its own.
    frame[["user", "clicked"]].to_csv(tmp_path / "z.csv", index=False)
    assert datasets.from_files(tmp_path / "z.csv",
                               label="clicked").spec["user"].vocabulary


def _app_runner():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "run_tflite", os.path.join(os.path.dirname(__file__), "..", "export",
                                   "run_tflite.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RAW_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20),
    st.floats(allow_infinity=False),
    st.text(alphabet=" +-0123456789abc.", max_size=22),
)


@given(st.lists(RAW_VALUES, min_size=1, max_size=20),
       st.lists(RAW_VALUES, min_size=1, max_size=8))
def test_the_app_runner_keys_values_as_training_does(values, vocabulary_seed):
    # export/run_tflite.py keeps its own copy (it imports no tfkd): the
    # two must give every raw value the same key and id.
    runner = _app_runner()
    for value in values:
        assert runner.canonical(value) == vocabulary.canonical(value)
    counts = vocabulary.ValueCounts()
    counts.add(np.array(vocabulary_seed, object))
    vocab = counts.vocabulary()
    if not vocab:
        return
    ids = {key: i + 1 for i, key in enumerate(vocab)}
    assert runner.lookup(values, ids) == vocabulary.lookup(
        np.array(values, object), vocab).tolist()
