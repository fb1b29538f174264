"""Tests for the helpers the benchmarks share (`tfkd.bench.utils`)."""

import json

import numpy as np
import pytest

from tfkd.bench import utils as bench_utils


class TestSeedStatistics:
    def test_mean_and_sample_std_match_numpy(self):
        values = [0.8546, 0.8557, 0.8547]
        assert bench_utils.mean(values) == pytest.approx(np.mean(values))
        assert bench_utils.sample_std(values) == pytest.approx(
            np.std(values, ddof=1))

    def test_missing_values_are_skipped(self):
        assert bench_utils.mean([1.0, None, 3.0]) == 2.0
        assert bench_utils.sample_std([1.0, None, 3.0]) == pytest.approx(
            np.sqrt(2.0))
        assert bench_utils.mean([None]) is None

    def test_one_seed_has_zero_spread(self):
        assert bench_utils.sample_std([0.86]) == 0.0
        json.dumps(bench_utils.sample_std([0.86]))  # not NaN


class TestValidateSeeds:
    def test_returns_a_list(self):
        assert bench_utils.validate_seeds((0, 1, 2), 5) == [0, 1, 2]

    @pytest.mark.parametrize(
        "seeds, size, error, match",
        [
            (3, 1, TypeError, "list of ints, e.g. "),
            ([0, 0], 1, ValueError, "distinct ints >= 0"),
            ([-1], 1, ValueError, "distinct ints >= 0"),
            ([True], 1, ValueError, "distinct ints >= 0"),
            ([0], 0, ValueError, "`ensemble_size` must be an int >= 1"),
        ],
    )
    def test_rejects(self, seeds, size, error, match):
        with pytest.raises(error, match=match):
            bench_utils.validate_seeds(seeds, size)


def test_machine_and_load_are_json():
    machine = bench_utils.machine()
    assert machine["cpus"] >= 1
    assert set(machine) == {"platform", "processor", "cpus", "python"}
    json.dumps([machine, bench_utils.load_average()])
