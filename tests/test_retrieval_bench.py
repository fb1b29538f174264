"""Tests for `tfkd.bench.retrieval_catalogue` (`tfkd bench --retrieval`,
issue #14).

The bench runs on a 2,000-item catalogue here, through the same code as
the 100K-item run.
"""

import json

import pytest

from tfkd.bench import retrieval_catalogue as retrieval_bench
from tfkd.cli import main as cli
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.retrieval_export import DEFAULT_MIN_RECALL
from tfkd.export.retrieval_export import IDS_OUTPUT

NUM_ITEMS, K = 2_000, 10


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrieval_bench")
    json_path = folder / "retrieval.json"
    # d=16: training is not bit-reproducible, and at d=8 `dynamic`'s
    # recall (0.80-0.81) sits on its 0.8 minimum; at d=16 it is 0.93.
    report = retrieval_bench.run_retrieval_bench(
        num_items=NUM_ITEMS, k=K, json_path=str(json_path),
        embedding_dims=(16,), num_users=200, check_users=100,
        latency_runs=5, workdir=str(folder / "files"),
    )
    return report, json_path, folder


class TestRunRetrievalBench:
    def test_json_shape(self, bench):
        report, json_path, _ = bench
        with open(json_path) as f:
            assert json.load(f) == json.loads(json.dumps(report))
        assert set(report) >= {"config", "goals", "results", "best", "load"}
        assert report["config"]["num_items"] == NUM_ITEMS
        # 1, 5 and 15 minute averages, as the other benches report them.
        assert len(report["load"]["before"]) == 3
        assert len(report["load"]["after"]) == 3
        assert report["goals"] == {
            "max_bytes": 4_000_000,
            "max_invoke_us": 1_000.0,
            "min_recall": 0.99,
        }
        modes = [row["quantization"] for row in report["results"]]
        assert modes == [
            mode or "none" for mode in retrieval_bench.DEFAULT_MODES
        ]
        for row in report["results"]:
            assert row["embedding_dim"] == 16
            assert row["bytes"] > 0
            assert row["invoke_us_p50"] > 0 and row["latency_us_p50"] > 0
            assert row["num_users_checked"] == 100

    def test_recall_reaches_each_modes_minimum(self, bench):
        report, _, _ = bench
        for row in report["results"]:
            mode = None if row["quantization"] == "none" else (
                row["quantization"]
            )
            assert row["recall_at_k"] >= DEFAULT_MIN_RECALL[mode], row

    def test_goals_follow_the_numbers(self, bench):
        report, _, _ = bench
        goals = report["goals"]
        for row in report["results"]:
            assert row["goals_met"] == {
                "bytes": row["bytes"] <= goals["max_bytes"],
                "invoke_us": row["invoke_us_p50"] <= goals["max_invoke_us"],
                "recall": row["recall_at_k"] >= goals["min_recall"],
            }
            assert row["meets_goals"] == all(row["goals_met"].values())
        passing = [row for row in report["results"] if row["meets_goals"]]
        # float32 and int16_table recall ~1.0 here: someone passes.
        best = min(passing, key=lambda row: row["bytes"])
        assert report["best"] == {
            "embedding_dim": best["embedding_dim"],
            "quantization": best["quantization"],
        }

    def test_int16_table_file_returns_k_distinct_ids(self, bench):
        _, _, folder = bench
        runner = LiteRTRunner(folder / "files" / "retrieval_d16_int16_table"
                              ".tflite")
        request = {name: [1] for name in runner.input_names}
        ids = runner.fixed_shape(request)()[IDS_OUTPUT][0]
        assert len(set(ids.tolist())) == K
        assert all(1 <= item <= NUM_ITEMS for item in ids.tolist())

    @pytest.mark.parametrize(
        "kwargs, fragment",
        [
            ({"modes": ["int8"]}, "`modes`"),
            ({"modes": []}, "`modes`"),
            ({"k": 50, "num_items": 20}, "`k` <= `num_items`"),
            ({"embedding_dims": ()}, "embedding width"),
        ],
        ids=["full_int8", "no_modes", "k_too_big", "no_dims"],
    )
    def test_bad_arguments(self, kwargs, fragment):
        with pytest.raises(ValueError, match=fragment):
            retrieval_bench.run_retrieval_bench(**kwargs)


class TestCli:
    def test_help_routes_to_retrieval_bench(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["bench", "--retrieval", "--help"])
        assert exit_info.value.code == 0
        assert "tfkd bench --retrieval" in capsys.readouterr().out

    def test_retrieval_not_first_is_explained(self, capsys):
        assert cli.main(["bench", "--json", "-", "--retrieval"]) == 1
        assert "put it first" in capsys.readouterr().err

    def test_main_prints_the_report(self, capsys, tmp_path):
        # `none` on the command line is float32 (quantization=None).
        assert retrieval_bench.main([
            "--items", "500", "--users", "50", "--dims", "4",
            "--modes", "none", "int16_table", "--check-users", "20",
            "--latency-runs", "2", "--workdir", str(tmp_path),
        ]) == 0
        report = json.loads(capsys.readouterr().out)
        assert [row["quantization"] for row in report["results"]] == [
            "none", "int16_table",
        ]
