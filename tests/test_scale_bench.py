"""`tfkd.bench.scale`: training from synthetic shards in fresh processes."""

import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tfkd.bench import scale as scale_bench  # noqa: E402


class TestWriteShards:
    @pytest.mark.parametrize("fmt", ["csv", "parquet"])
    def test_rows_spread_over_shards(self, tmp_path, fmt, monkeypatch):
        # Small write chunks, so shards are written in several pieces.
        monkeypatch.setattr(scale_bench, "WRITE_CHUNK_ROWS", 400)
        paths = scale_bench.write_shards(tmp_path, 2_501, 3, fmt=fmt)
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        frames = [read(p) for p in paths]
        # 2,501 rows in 3 shards: 833, 834, 834.
        assert [len(f) for f in frames] == [833, 834, 834]
        frame = pd.concat(frames)
        assert tuple(frame.columns) == scale_bench.COLUMNS
        assert frame.drop(columns="label").min().min() >= 1
        assert set(frame["label"]) == {0, 1}

    def test_refuses_more_shards_than_rows(self, tmp_path):
        with pytest.raises(ValueError, match="`shards` must be in \\[1, "
                           "rows\\]. Received: shards=5, rows=3"):
            scale_bench.write_shards(tmp_path, 3, 5)


class TestRunScaleBench:
    def test_json_shape_and_every_train_row_trained(self, tmp_path):
        path = tmp_path / "scale.json"
        status = scale_bench.main([
            "--rows", "40000", "20000", "--shards", "2", "--batch-size",
            "512", "--workdir", str(tmp_path / "work"), "--json", str(path),
        ])
        assert status == 0
        report = json.loads(path.read_text())
        assert sorted(report["rows"]) == ["20000", "40000"]
        for n, run in report["rows"].items():
            assert run["rows"] == int(n)
            # The child counted the examples that reached the model.
            assert run["trained_examples"] == run["train_rows"]
            assert 0.7 * int(n) < run["train_rows"] < 0.9 * int(n)
            assert run["peak_rss_mb"] >= run["baseline_rss_mb"] > 0
            assert run["examples_per_s"] > 0
            assert math.isfinite(run["loss"])
            assert run["shards"] == 2
        assert report["rss_ratio_40k_vs_20k"] == pytest.approx(
            report["rows"]["40000"]["peak_rss_mb"]
            / report["rows"]["20000"]["peak_rss_mb"]
        )
        # The shards are deleted after each run.
        assert os.listdir(tmp_path / "work") == []

    def test_refuses_tiny_sizes(self):
        with pytest.raises(ValueError, match="sizes >= 1,000"):
            scale_bench.run_scale_bench(rows=(10,))
