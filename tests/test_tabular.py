"""`tfkd.datasets.from_files`: the user's own CSV / Parquet files."""

import io
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tfkd import datasets  # noqa: E402
from tfkd.datasets import tabular_files  # noqa: E402

# Six rows a person can check: uid ids start at 3, track ids at 10.
SMALL_CSV = """uid,track,hour,price,clicked
3,10,5,1.5,1
7,12,23,2.5,0
3,11,5,3.5,1
5,10,1,0.5,0
7,12,2,4.5,1
5,11,8,2.0,0
"""


def clicks_frame(num_rows=300, seed=0):
    """A click log: ids not starting at 1, an hour id, a float price."""
    rng = np.random.default_rng(seed)
    uid = rng.integers(100, 140, num_rows)
    price = np.round(rng.gamma(2.0, 5.0, num_rows), 2)
    logit = 0.1 * (uid % 5) - 0.08 * price + 0.5
    return pd.DataFrame({
        "uid": uid,
        "track": rng.integers(7, 57, num_rows),
        "hour": rng.integers(1, 25, num_rows),
        "price": price,
        "clicked": (rng.random(num_rows) < 1 / (1 + np.exp(-logit))).astype(
            int
        ),
    })


def write(path, text):
    path.write_text(text)
    return str(path)


def bad_csv(tmp_path, row, column, value, name="x.csv"):
    """SMALL_CSV with the cell at file row `row` (header = 1) replaced."""
    lines = SMALL_CSV.splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = value
    lines[row - 1] = ",".join(cells)
    return write(tmp_path / name, "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clicks")
    frame = clicks_frame()
    frame.to_csv(folder / "clicks.csv", index=False)
    frame.to_parquet(folder / "clicks.parquet", index=False)
    shards = folder / "csv_shards"
    shards.mkdir()
    parquet_shards = folder / "parquet_shards"
    parquet_shards.mkdir()
    for k, start in enumerate(range(0, len(frame), 100)):
        part = frame.iloc[start:start + 100]
        part.to_csv(shards / f"part-{k}.csv", index=False)
        part.to_parquet(parquet_shards / f"part-{k}.parquet", index=False)
    return {"frame": frame, "folder": folder}


class TestInference:
    def test_integer_columns_are_ids_floats_are_numbers(self, tmp_path):
        data = datasets.from_files(
            write(tmp_path / "x.csv", SMALL_CSV), label="clicked"
        )
        spec = data.spec
        assert spec.names == ("uid", "track", "hour", "price")
        # Vocabulary = largest id + 1 (row 0 is the unknown id).
        assert spec.vocabulary_sizes == {"uid": 8, "track": 13, "hour": 24}
        price = spec["price"]
        assert price.kind == "numeric"
        # mean(1.5, 2.5, 3.5, 0.5, 4.5, 2.0) = 14.5 / 6; population std.
        values = np.array([1.5, 2.5, 3.5, 0.5, 4.5, 2.0])
        assert price.mean == pytest.approx(14.5 / 6)
        assert price.std == pytest.approx(np.sqrt(np.mean(
            (values - 14.5 / 6) ** 2
        )))
        assert (spec.task, spec.label, spec.label_kind) == (
            "ctr", "clicked", "binary"
        )

    def test_batches_carry_int32_ids_and_float32_numbers(self, clicks):
        data = datasets.from_files(
            clicks["folder"] / "clicks.csv", label="clicked"
        )
        features, labels = next(iter(data.train))
        assert {k: v.dtype.name for k, v in features.items()} == {
            "uid": "int32", "track": "int32", "hour": "int32",
            "price": "float32",
        }
        assert labels.dtype.name == "float32"

    def test_seeded_random_split(self, clicks):
        path = clicks["folder"] / "clicks.csv"
        first = datasets.from_files(path, label="clicked", seed=3)
        again = datasets.from_files(path, label="clicked", seed=3)
        other = datasets.from_files(path, label="clicked", seed=4)
        assert [len(first.frames[k]) for k in ("train", "val", "test")] == [
            240, 30, 30
        ]
        pd.testing.assert_frame_equal(first.frames["test"],
                                      again.frames["test"])
        assert not first.frames["test"].equals(other.frames["test"])
        # Every row lands in exactly one part, unchanged.
        rows = pd.concat(first.frames.values()).sort_values(
            ["uid", "track", "hour", "price"]
        ).reset_index(drop=True)
        expected = clicks["frame"].sort_values(
            ["uid", "track", "hour", "price"]
        ).reset_index(drop=True)
        np.testing.assert_allclose(rows["price"], expected["price"],
                                   rtol=1e-6)
        np.testing.assert_array_equal(rows["uid"], expected["uid"])

    def test_rating_task_keeps_the_numbers(self, tmp_path):
        text = SMALL_CSV.replace(",1\n", ",4\n").replace(",0\n", ",2\n")
        data = datasets.from_files(
            write(tmp_path / "r.csv", text), label="clicked", task="rating"
        )
        labels = pd.concat(data.frames.values())["clicked"]
        assert sorted(labels.unique()) == [2.0, 4.0]
        assert data.spec.label_kind == "rating"


class TestSources:
    def _frames(self, path):
        return datasets.from_files(path, label="clicked", seed=5).frames

    @pytest.mark.parametrize(
        "source",
        ["csv_shards", "clicks.parquet", "parquet_shards"],
        ids=["csv_shards", "parquet_file", "parquet_shards"],
    )
    def test_same_data_as_one_csv_file(self, clicks, source):
        expected = self._frames(clicks["folder"] / "clicks.csv")
        frames = self._frames(clicks["folder"] / source)
        for name in ("train", "val", "test"):
            pd.testing.assert_frame_equal(frames[name], expected[name])

    def test_spec_round_trip_through_json(self, clicks, tmp_path):
        path = clicks["folder"] / "clicks.csv"
        config = datasets.from_files(path, label="clicked").spec.to_dict()
        # The user edits the spec: hour becomes a number, track is dropped.
        config["features"] = [
            {"name": "hour", "kind": "numeric", "mean": 12.0, "std": 6.0}
            if f["name"] == "hour" else f
            for f in config["features"]
            if f["name"] != "track"
        ]
        (tmp_path / "spec.json").write_text(json.dumps(config))
        spec = datasets.FeatureSpec.from_dict(
            json.loads((tmp_path / "spec.json").read_text())
        )
        data = datasets.from_files(path, spec=spec)
        assert data.spec == spec
        features, _ = next(iter(data.val))
        assert sorted(features) == ["hour", "price", "uid"]
        assert features["hour"].dtype.name == "float32"

    def test_spec_ids_past_the_vocabulary_stay_out_of_range(self, tmp_path):
        spec = datasets.FeatureSpec(
            (datasets.Feature("uid", 4),), "ctr", "clicked", "binary"
        )
        data = datasets.from_files(
            write(tmp_path / "x.csv", SMALL_CSV), spec=spec
        )
        ids = pd.concat(data.frames.values())["uid"]
        # 5 and 7 are beyond a vocabulary of 4: the model reads them as
        # unknown; the pipeline keeps them as they are.
        assert sorted(ids.unique()) == [3, 5, 7]

    def test_label_and_spec_must_agree(self, tmp_path):
        spec = datasets.FeatureSpec(
            (datasets.Feature("uid", 8),), "ctr", "clicked", "binary"
        )
        with pytest.raises(ValueError, match="Received: label='y', spec "
                           "label='clicked'"):
            datasets.from_files(write(tmp_path / "x.csv", SMALL_CSV),
                                label="y", spec=spec)


class TestValidation:
    def test_missing_label_lists_the_columns(self, tmp_path):
        path = write(tmp_path / "x.csv", SMALL_CSV)
        with pytest.raises(ValueError, match="has no label column 'click'. "
                           "Its columns: uid, track, hour, price, clicked"):
            datasets.from_files(path, label="click")

    def test_row_with_too_many_fields(self, tmp_path):
        lines = SMALL_CSV.splitlines()
        lines[3] += ",9"
        path = write(tmp_path / "x.csv", "\n".join(lines) + "\n")
        with pytest.raises(ValueError, match="x.csv row 4 has 6 fields; "
                           "the header has 5"):
            datasets.from_files(path, label="clicked")

    @pytest.mark.parametrize(
        "row, column, value, match",
        [
            (3, "price", "abc", "row 3, column 'price' is not a number: "
             "'abc'"),
            (5, "price", "", "row 5, column 'price' is empty"),
            (3, "clicked", "nan", "row 3, column 'clicked' \\(the label\\) "
             "is nan"),
            (4, "clicked", "3", "row 4, column 'clicked' \\(the label\\) is "
             "3: the labels run from 0 to 3: they look like ratings; pass "
             "task='rating'"),
            (2, "clicked", "-1", "row 2, column 'clicked' \\(the label\\) is "
             "-1: the ctr task needs labels 0 or 1"),
            (7, "price", "inf", "row 7, column 'price' holds inf: every row "
             "needs a finite number"),
        ],
        ids=["not_a_number", "empty_cell", "nan_label", "rating_labels",
             "negative_label", "infinite_number"],
    )
    def test_names_file_row_and_column(self, tmp_path, row, column, value,
                                       match):
        path = bad_csv(tmp_path, row, column, value)
        with pytest.raises(ValueError, match=match):
            datasets.from_files(path, label="clicked")

    @pytest.mark.parametrize(
        "row, value, match",
        [
            (4, "-2", "row 4, column 'uid' holds -2: ids must be >= 1, "
             "since tfkd models keep id 0 for unknown ids. Leave the spec "
             "out"),
            (6, "0", "row 6, column 'uid' holds 0: ids must be >= 1"),
            (5, "", "row 5, column 'uid' holds empty, but the spec's feature "
             "'uid' has no vocabulary: its cells must be ids from 1"),
            (3, "u7", "row 3, column 'uid' holds 'u7', but the spec's "
             "feature 'uid' has no vocabulary"),
        ],
        ids=["negative_id", "zero_id", "empty_cell", "text_id"],
    )
    def test_spec_without_vocabulary_needs_ids_from_1(self, tmp_path, row,
                                                      value, match):
        spec = datasets.FeatureSpec(
            (datasets.Feature("uid", 8),), "ctr", "clicked", "binary"
        )
        path = bad_csv(tmp_path, row, "uid", value)
        with pytest.raises(ValueError, match=match):
            datasets.from_files(path, spec=spec)

    def test_message_counts_the_other_bad_rows(self, tmp_path):
        text = SMALL_CSV.replace("\n3,10,5,1.5", "\n3,10,5,x").replace(
            "\n3,11,5,3.5", "\n3,11,5,y")
        path = write(tmp_path / "x.csv", text)
        with pytest.raises(ValueError, match="row 2, column 'price' is not "
                           "a number: 'x' \\(and 1 more rows\\)"):
            datasets.from_files(path, label="clicked")

    def test_shard_error_names_the_shard(self, tmp_path):
        folder = tmp_path / "shards"
        folder.mkdir()
        write(folder / "part-0.csv", SMALL_CSV)
        bad_csv(folder, 3, "price", "n/a", name="part-1.csv")
        with pytest.raises(ValueError, match="part-1.csv row 3, column "
                           "'price' is not a number: 'n/a'"):
            datasets.from_files(folder, label="clicked")

    def test_shards_with_other_columns(self, tmp_path):
        folder = tmp_path / "shards"
        folder.mkdir()
        write(folder / "a.csv", SMALL_CSV)
        write(folder / "b.csv", SMALL_CSV.replace("hour", "minute"))
        with pytest.raises(ValueError, match="same columns"):
            datasets.from_files(folder, label="clicked")

    def test_parquet_null_names_the_record(self, tmp_path):
        frame = pd.read_csv(io.StringIO(SMALL_CSV))
        frame["price"] = frame["price"].astype("Float64")
        frame.loc[1, "price"] = pd.NA
        frame.to_parquet(tmp_path / "x.parquet", index=False)
        with pytest.raises(ValueError, match="x.parquet record 2, column "
                           "'price' is empty \\(null\\)"):
            datasets.from_files(tmp_path / "x.parquet", label="clicked")

    def test_spec_id_column_needs_whole_numbers(self, tmp_path):
        spec = datasets.FeatureSpec(
            (datasets.Feature("price", 10),), "ctr", "clicked", "binary"
        )
        with pytest.raises(ValueError, match="row 2, column 'price' holds "
                           "1.5 \\(and 4 more rows\\): an id column needs "
                           "whole numbers"):
            datasets.from_files(write(tmp_path / "x.csv", SMALL_CSV),
                                spec=spec)

    def test_too_many_distinct_values_names_the_fix(self, tmp_path,
                                                    monkeypatch):
        from tfkd.datasets import row_checks

        monkeypatch.setattr(row_checks, "MAX_INFERRED_VOCABULARY", 3)
        with pytest.raises(ValueError, match="Column 'uid' holds 3 "
                           "distinct values in the training rows.*"
                           "max_tokens \\(--max-tokens\\)"):
            datasets.from_files(write(tmp_path / "x.csv", SMALL_CSV),
                                label="clicked")

    def test_missing_path_and_empty_folder(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="No .csv or .parquet"):
            datasets.from_files(tmp_path / "nope.csv", label="clicked")
        (tmp_path / "empty").mkdir()
        with pytest.raises(FileNotFoundError, match="nor a folder of them"):
            datasets.from_files(tmp_path / "empty", label="clicked")

    def test_header_without_rows(self, tmp_path):
        path = write(tmp_path / "x.csv", SMALL_CSV.splitlines()[0] + "\n")
        with pytest.raises(ValueError, match="x.csv holds no data rows"):
            datasets.from_files(path, label="clicked")

    def test_other_file_types_refused(self, tmp_path):
        path = write(tmp_path / "x.tsv", SMALL_CSV)
        with pytest.raises(ValueError, match="Received: \\['x.tsv'\\]"):
            datasets.from_files(path, label="clicked")

    def test_blank_lines_keep_row_numbers(self, tmp_path):
        # A blank line is skipped, yet row numbers stay those of the file.
        lines = SMALL_CSV.splitlines()
        lines.insert(2, "")
        lines[4] = lines[4].replace("3.5", "3.5.1")
        path = write(tmp_path / "x.csv", "\n".join(lines) + "\n")
        assert tabular_files.CSV_FIRST_DATA_ROW == 2
        with pytest.raises(ValueError, match="row 5, column 'price' is not "
                           "a number: '3.5.1'"):
            datasets.from_files(path, label="clicked")
