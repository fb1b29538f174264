"""Tests for `tfkd bench --quality` on a tiny synthetic ctr set."""

import json
import math

import pytest

from tfkd import cli
from tfkd import datasets
from tfkd import quality_bench
from tfkd import recipes

MAIN_ROWS = ("teacher", "teacher_ensemble", "student_scratch",
             "student_distilled")
VARIANTS = ("kd_single_teacher", "kd_ensemble_cached_logits",
            "kd_ensemble_alpha_0.3", "kd_ensemble_transfer_set")
ROW_KEYS = ("auc_mean", "auc_std", "auc_per_seed", "val_auc_mean",
            "val_auc_per_seed", "params", "seeds", "epochs_per_seed",
            "best_epoch_per_seed",
            "seconds_per_seed", "recipe")
# Live ensemble vs cached logits, same seed, same batches in the same
# order: the only difference is where the ensemble's logits are computed,
# inside the train step (batches of 256) or once by `predict` (batches of
# 4096), and the CPU kernels round a few rows differently in the last bit
# (on MovieLens-100K, 1 batch in 100 differed, by at most 1.9e-9). After
# one epoch here the AUCs are identical (measured difference 0.0); over
# 20-40 epochs on MovieLens-100K the differences grow (test AUCs of 3
# seeds differ by at most 2.3e-4 with the Recipe, 4.6e-4 with patience
# 10), so the bound is for short runs, with room for other CPUs' kernels.
CACHED_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def report_and_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("quality") / "quality.json"
    report = quality_bench.run_quality_bench(
        seeds=[0],
        ensemble_size=2,
        recipe=recipes.Recipe(epochs=1),
        data=datasets.synthetic_movielens(task="ctr"),
        transfer_size=1.0,
        json_path=str(path),
        verbose=0,
    )
    return report, path


def _finite_numbers(value):
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.isfinite(value)
    return True


class TestRunQualityBench:
    def test_report_shape(self, report_and_path):
        report, _ = report_and_path
        assert set(MAIN_ROWS) <= set(report)
        assert set(report["variants"]) == set(VARIANTS)
        rows = [report[n] for n in MAIN_ROWS] + list(
            report["variants"].values())
        for row in rows:
            assert set(ROW_KEYS) <= set(row)
            assert row["seeds"] == [0]
            assert len(row["auc_per_seed"]) == 1
            assert 0.0 < row["auc_mean"] < 1.0
            assert row["auc_std"] == 0.0  # one seed
        assert _finite_numbers(report)
        assert report["settings"]["seeds"] == [0]
        assert report["settings"]["ensemble_size"] == 2

    def test_params_and_size_ratio(self, report_and_path):
        report, _ = report_and_path
        teacher = report["teacher"]["params"]
        student = report["student_distilled"]["params"]
        assert report["teacher_ensemble"]["params"] == 2 * teacher
        assert report["student_scratch"]["params"] == student < teacher
        assert report["size_ratio"] == pytest.approx(student / teacher)

    def test_gap_recovery_from_recorded_aucs(self, report_and_path):
        report, _ = report_and_path
        distilled = report["student_distilled"]["auc_per_seed"][0]
        scratch = report["student_scratch"]["auc_per_seed"][0]
        ensemble = report["teacher_ensemble"]["auc_per_seed"][0]
        expected = (distilled - scratch) / (ensemble - scratch)
        gap = report["gap_recovery"]
        assert gap["per_seed"] == [pytest.approx(expected)]
        assert gap["mean"] == pytest.approx(expected)

    def test_cached_logits_match_live_ensemble(self, report_and_path):
        report, _ = report_and_path
        live = report["student_distilled"]
        cached = report["variants"]["kd_ensemble_cached_logits"]
        assert cached["auc_mean"] == pytest.approx(live["auc_mean"],
                                                   abs=CACHED_TOLERANCE)
        assert cached["val_auc_mean"] == pytest.approx(
            live["val_auc_mean"], abs=CACHED_TOLERANCE)

    def test_json_written(self, report_and_path):
        report, path = report_and_path
        written = json.loads(path.read_text())
        assert written == json.loads(json.dumps(report))

    @pytest.mark.parametrize(
        "kwargs, fragment",
        [
            ({"seeds": []}, "non-empty list of distinct ints"),
            ({"seeds": [0, 0]}, "non-empty list of distinct ints"),
            ({"seeds": 3}, "must be a list of ints"),
            ({"ensemble_size": 0}, "ensemble_size"),
        ],
        ids=["no_seeds", "repeated_seed", "int_seeds", "no_teachers"],
    )
    def test_bad_arguments(self, kwargs, fragment):
        with pytest.raises((TypeError, ValueError), match=fragment):
            quality_bench.run_quality_bench(**kwargs, verbose=0)

    def test_rejects_rating_data(self):
        data = datasets.synthetic_movielens(task="rating", num_ratings=500)
        with pytest.raises(ValueError, match="pass ctr data"):
            quality_bench.run_quality_bench(data=data, verbose=0)


class TestSummarise:
    @staticmethod
    def _run(teacher, ensemble, scratch, distilled):
        def row(auc, params):
            return {"auc": auc, "val_auc": auc, "params": params,
                    "epochs": 3, "best_epoch": 2, "seconds": 1.0,
                    "recipe": "r"}

        return {"teacher": row(teacher, 100),
                "teacher_ensemble": row(ensemble, 500),
                "student_scratch": row(scratch, 5),
                "student_distilled": row(distilled, 5),
                "kd_single_teacher": row(scratch, 5)}

    def test_hand_computed(self):
        # Seed 0: (0.85 - 0.80) / (0.90 - 0.80) = 0.5; seed 1:
        # (0.86 - 0.80) / (0.90 - 0.80) = 0.6. Sample sd of the
        # AUCs 0.85 and 0.86 is 0.01 / sqrt(2).
        runs = [self._run(0.88, 0.90, 0.80, 0.85),
                self._run(0.88, 0.90, 0.80, 0.86)]
        report = quality_bench.summarise(runs, [0, 1])
        gap = report["gap_recovery"]
        assert gap["per_seed"] == [pytest.approx(0.5), pytest.approx(0.6)]
        assert gap["mean"] == pytest.approx(0.55)
        assert report["student_distilled"]["auc_std"] == pytest.approx(
            0.01 / math.sqrt(2))
        assert report["size_ratio"] == pytest.approx(0.05)
        assert list(report["variants"]) == ["kd_single_teacher"]

    def test_no_gap_is_none(self):
        report = quality_bench.summarise(
            [self._run(0.8, 0.8, 0.8, 0.8)], [0])
        assert report["gap_recovery"]["per_seed"] == [None]
        assert report["gap_recovery"]["mean"] is None


class TestCli:
    def test_help_routes_to_quality_bench(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["bench", "--quality", "--help"])
        assert exit_info.value.code == 0
        assert "tfkd bench --quality" in capsys.readouterr().out

    def test_quality_not_first_is_explained(self, capsys):
        assert cli.main(["bench", "--json", "-", "--quality"]) == 1
        assert "put it first" in capsys.readouterr().err
