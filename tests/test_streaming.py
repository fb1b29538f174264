"""`tfkd.datasets.streaming.stream_files`: shards read as they train."""

import math
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import tfkd  # noqa: E402
from tfkd import datasets  # noqa: E402
from tfkd.datasets.streaming import stream_files  # noqa: E402

COLUMNS = ["uid", "track", "hour", "price", "clicked"]
SHARD_ROWS = 120
NUM_SHARDS = 3
# Smaller than a shard, so the checking pass crosses chunk boundaries.
CHUNK_ROWS = 50


def clicks_frame(num_rows=SHARD_ROWS * NUM_SHARDS, seed=0):
    """Ids not starting at 1, an integer hour, a price unique per row."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "uid": rng.integers(100, 140, num_rows),
        "track": rng.integers(7, 57, num_rows),
        "hour": rng.integers(1, 25, num_rows),
        # Row i costs i + a fraction: the price names the row.
        "price": np.arange(num_rows) + np.round(rng.random(num_rows), 3),
        "clicked": rng.integers(0, 2, num_rows),
    })


def write_shards(folder, frame, fmt):
    folder.mkdir()
    for k in range(NUM_SHARDS):
        part = frame.iloc[k * SHARD_ROWS:(k + 1) * SHARD_ROWS]
        if fmt == "csv":
            part.to_csv(folder / f"part-{k}.csv", index=False)
        else:
            part.to_parquet(folder / f"part-{k}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    frame = clicks_frame()
    return {fmt: write_shards(root / fmt, frame, fmt)
            for fmt in ("csv", "parquet")}


def rows_of(dataset, spec):
    """Every example of a batched dataset, as a frame in spec order."""
    columns = {name: [] for name in [*spec.names, spec.label]}
    for features, label in dataset:
        for name in spec.names:
            columns[name].append(features[name].numpy())
        columns[spec.label].append(label.numpy())
    return pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})


def all_rows(data):
    return pd.concat([rows_of(getattr(data, name), data.spec)
                      for name in ("train", "val", "test")])


def sorted_rows(frame):
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def stream(path, **kwargs):
    kwargs.setdefault("label", None if "spec" in kwargs else "clicked")
    return stream_files(path, chunk_rows=CHUNK_ROWS, batch_size=32,
                        **kwargs)


class TestSameDataAsFromFiles:
    @pytest.mark.parametrize("fmt", ["csv", "parquet"])
    def test_inferred_spec(self, shards, fmt):
        expected = datasets.from_files(shards[fmt], label="clicked").spec
        spec = stream(shards[fmt]).spec
        assert spec.vocabulary_sizes == expected.vocabulary_sizes
        # Mean and std merged over 50-row chunks: equal to rounding.
        assert spec["price"].mean == pytest.approx(expected["price"].mean,
                                                   rel=1e-12)
        assert spec["price"].std == pytest.approx(expected["price"].std,
                                                  rel=1e-12)

    @pytest.mark.parametrize("fmt", ["csv", "parquet"])
    @pytest.mark.parametrize("edit", ["inferred", "edited"])
    def test_rows_and_encoding(self, shards, fmt, edit):
        spec = datasets.from_files(shards[fmt], label="clicked").spec
        if edit == "edited":
            # hour becomes a number; uid's vocabulary stops at 120, so
            # larger ids stay as they are for the model to read as unknown.
            spec = datasets.FeatureSpec((
                datasets.Feature("uid", 120),
                datasets.Feature("hour", kind="numeric", mean=12, std=6),
                datasets.Feature("price", kind="numeric"),
            ), "ctr", "clicked", "binary")
        expected = pd.concat(
            datasets.from_files(shards[fmt], spec=spec).frames.values()
        )
        streamed = all_rows(stream(shards[fmt], spec=spec))
        assert dict(streamed.dtypes) == dict(expected.dtypes)
        pd.testing.assert_frame_equal(sorted_rows(streamed),
                                      sorted_rows(expected))

    def test_blank_lines_are_skipped_by_both_passes(self, tmp_path):
        lines = clicks_frame(40).to_csv(index=False).splitlines()
        lines[5:5] = ["", ",,,,"]
        (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
        data = stream(tmp_path / "x.csv")
        # The pass counted 40 rows; the readers yield as many (the
        # datasets assert the counted number of batches).
        assert sum(data.rows.values()) == 40
        assert len(all_rows(data)) == 40


class TestSplit:
    def _prices(self, data):
        return {name: set(rows_of(getattr(data, name), data.spec)["price"])
                for name in ("train", "val", "test")}

    def test_deterministic_disjoint_and_complete(self, shards):
        first = self._prices(stream(shards["csv"], seed=3))
        again = self._prices(stream(shards["csv"], seed=3))
        other = self._prices(stream(shards["csv"], seed=4))
        assert first == again
        assert first["test"] != other["test"]
        assert not first["train"] & first["val"]
        assert not first["train"] & first["test"]
        assert not first["val"] & first["test"]
        union = first["train"] | first["val"] | first["test"]
        assert len(union) == SHARD_ROWS * NUM_SHARDS

    def test_csv_and_parquet_split_alike(self, shards):
        assert (self._prices(stream(shards["csv"]))
                == self._prices(stream(shards["parquet"])))

    def test_counts_and_fractions(self, shards):
        data = stream(shards["csv"], val_fraction=0.2, test_fraction=0.1)
        prices = self._prices(data)
        assert {k: len(v) for k, v in prices.items()} == data.rows
        # 360 rows: val ~ Binomial(360, 0.2), mean 72, sd 7.6.
        assert abs(data.rows["val"] - 72) < 4 * 7.6
        assert abs(data.rows["test"] - 36) < 4 * 5.7

    def test_train_reshuffles_each_epoch(self, shards):
        data = stream(shards["csv"], shuffle_buffer=1000)
        first = rows_of(data.train, data.spec)["price"].to_numpy()
        second = rows_of(data.train, data.spec)["price"].to_numpy()
        assert not np.array_equal(first, second)
        np.testing.assert_array_equal(np.sort(first), np.sort(second))
        # The same seed gives the same epochs, in a new pipeline too.
        again = stream(shards["csv"], shuffle_buffer=1000)
        np.testing.assert_array_equal(
            rows_of(again.train, again.spec)["price"].to_numpy(), first
        )
        val = [rows_of(data.val, data.spec)["price"].to_numpy()
               for _ in range(2)]
        np.testing.assert_array_equal(val[0], val[1])


def broken_shards(folder, cells, fmt="csv"):
    """CSV shards of `clicks_frame` with `cells` {(row, column): text} of
    part-1 replaced; rows count as in the file (the header is row 1)."""
    frame = clicks_frame().astype(object)
    for (row, column), text in cells.items():
        frame.loc[SHARD_ROWS + row - 2, column] = text
    return write_shards(folder, frame, fmt)


def messages(path, **kwargs):
    """The messages of `from_files` and `stream_files` on the same files."""
    with pytest.raises(ValueError) as loaded:
        datasets.from_files(path, **kwargs)
    with pytest.raises(ValueError) as streamed:
        stream_files(path, chunk_rows=CHUNK_ROWS, **kwargs)
    return str(loaded.value), str(streamed.value)


class TestValidation:
    @pytest.mark.parametrize(
        "cells, match",
        [
            # Rows 70 and 110 of part-1 fall in its second and third chunks.
            ({(70, "price"): "x", (110, "price"): ""},
             "part-1.csv row 70, column 'price' is not a number: 'x'"),
            ({(70, "price"): "", (110, "price"): ""},
             "part-1.csv row 70, column 'price' is empty \\(and 1 more "
             "rows\\)"),
            ({(70, "clicked"): "3", (110, "clicked"): "2"},
             "part-1.csv row 70, column 'clicked' \\(the label\\) is 3 "
             "\\(and 1 more rows\\): the labels run from 0 to 3"),
            ({(70, "clicked"): "nan"},
             "part-1.csv row 70, column 'clicked' \\(the label\\) is nan"),
            ({(70, "price"): "abc"},
             "part-1.csv row 70, column 'price' is not a number: 'abc'"),
            ({(70, "price"): "inf"}, "part-1.csv row 70, column 'price' "
             "holds inf: every row needs a finite number"),
        ],
        ids=["text_in_numbers", "empty_cells", "rating_labels", "nan_label",
             "not_a_number", "infinite_number"],
    )
    def test_same_message_as_from_files(self, tmp_path, cells, match):
        folder = broken_shards(tmp_path / "shards", cells)
        loaded, streamed = messages(folder, label="clicked")
        assert streamed == loaded
        assert pytest.raises(ValueError, stream_files, folder,
                             label="clicked", chunk_rows=CHUNK_ROWS,
                             ).match(match)

    @pytest.mark.parametrize(
        "cells, match",
        [
            ({(70, "uid"): "-1", (110, "uid"): "-4"},
             "part-1.csv row 70, column 'uid' holds -1 \\(and 1 more rows\\)"
             ": ids must be >= 1"),
            ({(70, "hour"): "0"}, "part-1.csv row 70, column 'hour' holds 0:"
             " ids must be >= 1"),
        ],
        ids=["negative_ids", "zero_id"],
    )
    def test_spec_without_vocabulary_refuses_ids_below_1(self, tmp_path,
                                                         cells, match):
        spec = datasets.FeatureSpec(
            (datasets.Feature("uid", 200), datasets.Feature("hour", 30)),
            "ctr", "clicked", "binary",
        )
        folder = broken_shards(tmp_path / "shards", cells)
        loaded, streamed = messages(folder, spec=spec)
        assert streamed == loaded
        assert re.search(match, streamed)

    def test_counts_bad_rows_over_every_shard_and_chunk(self, shards):
        spec = datasets.FeatureSpec(
            (datasets.Feature("price", 1000),), "ctr", "clicked", "binary"
        )
        loaded, streamed = messages(shards["csv"], spec=spec)
        assert streamed == loaded
        # Every price but the whole ones breaks the rule, in all shards.
        assert "part-0.csv row 2, column 'price' holds" in streamed
        assert "more rows): an id column needs whole numbers" in streamed

    def test_parquet_null_names_the_record(self, tmp_path):
        frame = clicks_frame()
        frame["price"] = frame["price"].astype("Float64")
        frame.loc[SHARD_ROWS + 69, "price"] = pd.NA
        folder = write_shards(tmp_path / "shards", frame, "parquet")
        loaded, streamed = messages(folder, label="clicked")
        assert streamed == loaded
        assert "part-1.parquet record 70, column 'price' is empty" in streamed

    def test_shards_with_other_columns(self, tmp_path, shards):
        folder = tmp_path / "mixed"
        folder.mkdir()
        frame = clicks_frame(10)
        frame.to_csv(folder / "a.csv", index=False)
        frame.rename(columns={"hour": "minute"}).to_csv(folder / "b.csv",
                                                        index=False)
        with pytest.raises(ValueError, match="same columns"):
            stream_files(folder, label="clicked")

    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            ({"check": False}, ValueError, "check=False needs a `spec`"),
            ({"shuffle_buffer": 0}, ValueError,
             "`shuffle_buffer` must be >= 1. Received: shuffle_buffer=0"),
            ({"chunk_rows": 2.5}, TypeError, "`chunk_rows` must be an int"),
            ({"seed": -1}, ValueError, "`seed` must be in \\[0, 2\\*\\*63\\)"),
            ({"batch_size": 0}, ValueError, "`batch_size` must be >= 1"),
            ({"val_fraction": 0.0}, ValueError, "`val_fraction` must be in"),
        ],
        ids=["check_without_spec", "shuffle_buffer", "chunk_rows", "seed",
             "batch_size", "val_fraction"],
    )
    def test_bad_arguments(self, shards, kwargs, error, match):
        with pytest.raises(error, match=match):
            stream_files(shards["csv"], label="clicked", **kwargs)

    def test_list_feature_refused_before_reading(self, tmp_path):
        spec = datasets.FeatureSpec(
            (datasets.Feature("uid", 200, length=3),), "ctr", "clicked",
            "binary",
        )
        with pytest.raises(ValueError, match="give every list feature of "
                           "the spec a `separator`, or length 1"):
            stream_files(tmp_path / "not-there.csv", spec=spec)


class TestStreamedData:
    def test_frames_name_the_splits_but_refuse_rows(self, shards):
        data = stream(shards["parquet"])
        assert isinstance(data, datasets.MovieLensData)
        assert list(data.frames) == ["train", "val", "test"]
        with pytest.raises(LookupError, match="keeps its rows in the files"):
            data.frames["test"]
        assert [os.path.basename(f) for f in data.files] == [
            "part-0.parquet", "part-1.parquet", "part-2.parquet"
        ]

    def test_unchecked_with_spec(self, shards):
        spec = stream(shards["csv"]).spec
        data = stream(shards["csv"], spec=spec, check=False)
        assert data.rows is None
        assert len(all_rows(data)) == SHARD_ROWS * NUM_SHARDS

    def test_distiller_trains_one_epoch(self, shards):
        data = stream(shards["csv"])
        student = tfkd.models.student(data.spec)
        before = [w.copy() for w in student.get_weights()]
        distiller = tfkd.Distiller(
            teacher=tfkd.models.teacher(data.spec), student=student
        )
        distiller.compile(optimizer="adam",
                          metrics=[keras.metrics.AUC(from_logits=True)])
        history = distiller.fit(data.train, validation_data=data.val,
                                epochs=1, verbose=0)
        assert {"loss", "student_loss", "distillation_loss",
                "val_loss"} <= set(history.history)
        # The epoch's length is known from the checking pass.
        assert int(data.train.cardinality()) == math.ceil(
            data.rows["train"] / 32
        )
        changed = [not np.array_equal(a, b)
                   for a, b in zip(before, student.get_weights(),
                                   strict=True)]
        assert any(changed)
