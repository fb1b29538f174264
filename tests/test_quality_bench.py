"""Tests for `tfkd bench --quality` on a tiny synthetic ctr set."""

import json
import math

import keras
import numpy as np
import pytest

from tfkd import datasets
from tfkd import evaluation
from tfkd import models
from tfkd import recipes
from tfkd.bench import quality as quality_bench
from tfkd.bench import retrieval_quality
from tfkd.cli import main as cli

MAIN_ROWS = ("teacher", "teacher_ensemble", "student_scratch",
             "student_distilled")
VARIANTS = ("kd_ensemble", "kd_single_teacher", "kd_feature_projection",
            "kd_ensemble_cached_logits", "kd_ensemble_alpha_0.3")
ROW_KEYS = ("auc_mean", "auc_std", "auc_per_seed", "val_auc_mean",
            "val_auc_per_seed", "params", "seeds", "epochs_per_seed",
            "best_epoch_per_seed",
            "seconds_per_seed", "recipe")
# Live ensemble vs cached logits, same seed, same batches in the same
# order: the only difference is where the ensemble's logits are computed,
# inside the train step (batches of 256) or once by `predict` (batches of
# 4096), and the CPU kernels round a few rows differently in the last bit
# (on MovieLens-100K, 1 batch in 100 differed, by at most 1.9e-9). After
# two epochs here the AUCs are identical (measured difference 0.0); over
# 20-40 epochs on MovieLens-100K the differences grow (test AUCs of 3
# seeds differ by at most 2.3e-4 with the Recipe, 4.6e-4 with patience
# 10), so the bound is for short runs, with room for other CPUs' kernels.
CACHED_TOLERANCE = 1e-4


def _small_run(**kwargs):
    """The bench at the suite's size: one seed, 2 teachers, one epoch."""
    return quality_bench.run_quality_bench(
        seeds=[0],
        ensemble_size=2,
        recipe=recipes.Recipe(epochs=1),
        data=datasets.synthetic_movielens(task="ctr"),
        transfer_size=1.0,
        verbose=0,
        **kwargs,
    )


@pytest.fixture(scope="module")
def report_and_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("quality") / "quality.json"
    return _small_run(json_path=str(path)), path


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

    def test_feature_row_counts_only_the_student(self, report_and_path):
        # The projection trains with the student but is not exported.
        report, _ = report_and_path
        row = report["variants"]["kd_feature_projection"]
        assert row["params"] == report["student_scratch"]["params"]
        assert "dense_0 projected to teacher dense_2" in row["recipe"]

    def test_rows_without_transfer_set_get_its_steps(self, report_and_path):
        # One epoch over the labelled rows plus a 1x transfer set is as
        # many steps as two epochs over the labelled rows alone.
        report, _ = report_and_path
        assert report["student_distilled"]["epochs_per_seed"] == [1]
        assert report["student_scratch"]["epochs_per_seed"] == [2]
        for name, row in report["variants"].items():
            assert row["epochs_per_seed"] == [2], name

    def test_cached_logits_match_live_ensemble(self, report_and_path):
        report, _ = report_and_path
        live = report["variants"]["kd_ensemble"]
        cached = report["variants"]["kd_ensemble_cached_logits"]
        assert cached["auc_mean"] == pytest.approx(live["auc_mean"],
                                                   abs=CACHED_TOLERANCE)
        assert cached["val_auc_mean"] == pytest.approx(
            live["val_auc_mean"], abs=CACHED_TOLERANCE)

    def test_no_variants_trains_the_same_main_rows(self, report_and_path):
        # Each row seeds its own initialisers and shuffle, so leaving the
        # variants out changes nothing in the rows that remain.
        report, _ = report_and_path
        main_only = _small_run(variants=False)
        assert main_only["variants"] == {}
        for name in MAIN_ROWS:
            assert (main_only[name]["auc_per_seed"]
                    == report[name]["auc_per_seed"]), name
        assert main_only["gap_recovery"] == report["gap_recovery"]

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


RETRIEVAL_METRICS = ("hr@10", "ndcg@10", "full_hr@10", "full_ndcg@10",
                     "val_ndcg@10")


@pytest.fixture(scope="module")
def retrieval_data():
    return datasets.synthetic_movielens(task="retrieval", num_ratings=3000)


@pytest.fixture(scope="module")
def retrieval_report(retrieval_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("retrieval") / "retrieval.json"
    report = retrieval_quality.run_retrieval_quality_bench(
        seeds=[0],
        settings=retrieval_quality.RetrievalSettings(
            epochs=1, patience=1, ensemble_size=2),
        data=retrieval_data,
        json_path=str(path),
        verbose=0,
    )
    return report, path


def _two_towers(data, temperatures):
    members = []
    for seed, temperature in enumerate(temperatures):
        keras.utils.set_random_seed(seed)
        members.append(models.two_tower(data.spec, embedding_dim=4,
                                        hidden=(8,), temperature=temperature))
    return members


class TestEnsembleTwoTower:
    def test_logits_are_mean_of_members(self, retrieval_data):
        members = _two_towers(retrieval_data, [0.1, 0.5])
        ensemble = retrieval_quality.ensemble_two_tower(members)
        users = retrieval_data.users.head(5)
        items = retrieval_data.items.head(7)
        user_features = {k: np.stack(users[k].to_numpy()) for k in users}
        item_features = {k: np.stack(items[k].to_numpy()) for k in items}
        expected = np.mean([
            np.asarray(m.score(user_features, item_features)) / m.temperature
            for m in members], axis=0)
        got = (np.asarray(ensemble.score(user_features, item_features))
               / ensemble.temperature)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    def test_evaluates_as_a_two_tower(self, retrieval_data):
        # Two copies of one model rank exactly as that model does.
        (model,) = _two_towers(retrieval_data, [0.1])
        ensemble = retrieval_quality.ensemble_two_tower([model, model])
        expected = evaluation.evaluate_retrieval(model, retrieval_data)
        scores = evaluation.evaluate_retrieval(ensemble, retrieval_data)
        assert scores == pytest.approx(expected)
        assert 0.0 < scores["hit_rate@10"] < 1.0
        assert ensemble.num_items == model.num_items

    def test_rejects_non_two_towers(self):
        with pytest.raises(ValueError, match="non-empty list of TwoTower"):
            retrieval_quality.ensemble_two_tower([])


# Trains 2 teachers, a scratch student and 2 distilled ones: about 70 s of
# CPU time.
@pytest.mark.slow
class TestRunRetrievalQualityBench:
    def test_report_shape(self, retrieval_report):
        report, _ = retrieval_report
        assert set(MAIN_ROWS) <= set(report)
        assert report["distilled_method"] in ("kd_in_batch", "kd_ranking")
        assert set(report["variants"]) == (
            {"kd_in_batch", "kd_ranking"} - {report["distilled_method"]})
        rows = [report[n] for n in MAIN_ROWS] + list(
            report["variants"].values())
        for row in rows:
            assert row["seeds"] == [0]
            for key in RETRIEVAL_METRICS:
                assert 0.0 <= row[f"{key}_mean"] <= 1.0
                assert row[f"{key}_std"] == 0.0  # one seed
                assert row[f"{key}_per_seed"] == [row[f"{key}_mean"]]
        assert _finite_numbers(report)
        assert report["settings"]["ensemble_size"] == 2

    def test_distilled_is_best_on_validation(self, retrieval_report):
        report, _ = retrieval_report
        chosen = report["student_distilled"]["val_ndcg@10_mean"]
        for row in report["variants"].values():
            assert chosen >= row["val_ndcg@10_mean"]

    def test_ratio_and_params_from_rows(self, retrieval_report):
        report, _ = retrieval_report
        distilled = report["student_distilled"]["ndcg@10_per_seed"][0]
        scratch = report["student_scratch"]["ndcg@10_per_seed"][0]
        assert report["ndcg_ratio"]["per_seed"] == [
            pytest.approx(distilled / scratch)]
        teacher = report["teacher"]["params"]
        student = report["student_distilled"]["params"]
        assert report["teacher_ensemble"]["params"] == 2 * teacher
        assert report["student_scratch"]["params"] == student < teacher
        assert report["size_ratio"] == pytest.approx(student / teacher)

    def test_json_written(self, retrieval_report):
        report, path = retrieval_report
        assert json.loads(path.read_text()) == json.loads(json.dumps(report))

    def test_rejects_ctr_data(self):
        data = datasets.synthetic_movielens(task="ctr", num_ratings=500)
        with pytest.raises(ValueError, match="pass retrieval data"):
            retrieval_quality.run_retrieval_quality_bench(data=data,
                                                          verbose=0)


def _retrieval_row(ndcg, val, params):
    return {"hr@10": 2 * ndcg, "ndcg@10": ndcg, "full_hr@10": 0.1,
            "full_ndcg@10": 0.05, "val_ndcg@10": val, "params": params,
            "epochs": 3, "best_epoch": 2, "seconds": 1.0, "recipe": "r"}


def _retrieval_run(scratch, in_batch, ranking):
    return {"teacher": _retrieval_row(0.40, 0.40, 200),
            "teacher_ensemble": _retrieval_row(0.45, 0.45, 600),
            "student_scratch": _retrieval_row(scratch, scratch, 20),
            "kd_in_batch": _retrieval_row(in_batch, 0.30, 20),
            "kd_ranking": _retrieval_row(ranking, 0.35, 20)}


class TestRetrievalSummarise:
    def test_hand_computed(self):
        # Ranking wins on validation (0.35 > 0.30) though in_batch is
        # better on test; ratios 0.33 / 0.30 = 1.1 and 0.36 / 0.30 = 1.2.
        report = retrieval_quality.summarise(
            [_retrieval_run(0.30, 0.50, 0.33),
             _retrieval_run(0.30, 0.50, 0.36)], [0, 1])
        assert report["distilled_method"] == "kd_ranking"
        assert list(report["variants"]) == ["kd_in_batch"]
        ratio = report["ndcg_ratio"]
        assert ratio["per_seed"] == [pytest.approx(1.1), pytest.approx(1.2)]
        assert ratio["mean"] == pytest.approx(1.15)
        assert ratio["std"] == pytest.approx(0.1 / math.sqrt(2))
        # Of the scratch-to-ensemble gap (0.45 - 0.30): 0.03 and 0.06.
        gap = report["gap_recovery"]
        assert gap["per_seed"] == [pytest.approx(0.2), pytest.approx(0.4)]
        assert gap["metric"] == "ndcg@10"
        # No full-catalogue gap (every row 0.05): nothing to recover.
        assert report["full_gap_recovery"]["per_seed"] == [None, None]
        assert report["full_gap_recovery"]["mean"] is None
        assert report["student_distilled"]["ndcg@10_mean"] == (
            pytest.approx(0.345))
        assert report["size_ratio"] == pytest.approx(0.1)


class TestQualityTaskFlag:
    def test_retrieval_routes_with_flags(self, monkeypatch, capsys):
        calls = {}

        def fake_run(seeds, settings, json_path):
            calls.update(seeds=seeds, settings=settings, json_path=json_path)
            return retrieval_quality.summarise(
                [_retrieval_run(0.30, 0.50, 0.33)], seeds)

        monkeypatch.setattr(retrieval_quality, "run_retrieval_quality_bench",
                            fake_run)
        code = cli.main(["bench", "--quality", "--task", "retrieval",
                         "--seeds", "3", "--ensemble-size", "2",
                         "--epochs", "4", "--json", "out.json"])
        assert code == 0
        assert calls["seeds"] == [3]
        assert calls["json_path"] == "out.json"
        assert (calls["settings"].ensemble_size, calls["settings"].epochs,
                calls["settings"].patience) == (2, 4, 20)
        assert "student_distilled = kd_" in capsys.readouterr().err

    def test_ctr_is_the_default(self, monkeypatch):
        calls = {}
        monkeypatch.setattr(
            quality_bench, "run_quality_bench",
            lambda **kwargs: calls.update(kwargs) or {})
        monkeypatch.setattr(quality_bench, "table", lambda report: "")
        assert quality_bench.main(["--seeds", "1"]) == 0
        assert (calls["ensemble_size"], calls["transfer_size"]) == (5, 5.0)
        assert calls["variants"] is True
        assert quality_bench.main(["--seeds", "1", "--no-variants"]) == 0
        assert calls["variants"] is False
        # ML-1M: its recipe's 3 teachers and 1x transfer set, a 2-wide
        # student (3.9% of the teacher there).
        monkeypatch.setattr(quality_bench, "_dataset", lambda args: (
            recipes.Recipe.movielens_1m(), "data", "student"))
        assert quality_bench.main(["--seeds", "1", "--dataset",
                                   "ml-1m"]) == 0
        assert (calls["ensemble_size"], calls["transfer_size"]) == (3, 1.0)
        assert (calls["data"], calls["student"]) == ("data", "student")
        assert calls["recipe"].batch_size == 2048

    @pytest.mark.parametrize(
        "argv, fragment",
        [(["--task", "ranking"], "invalid choice: 'ranking'"),
         (["--task", "retrieval", "--transfer-size", "2"],
          "apply to --task ctr only"),
         (["--task", "retrieval", "--no-variants"],
          "apply to --task ctr only"),
         (["--task", "retrieval", "--dataset", "ml-1m"],
          "apply to --task ctr only")],
        ids=["unknown_task", "transfer_size_for_retrieval",
             "no_variants_for_retrieval", "ml_1m_for_retrieval"],
    )
    def test_refused(self, argv, fragment, capsys):
        with pytest.raises(SystemExit) as exit_info:
            quality_bench.main(argv)
        assert exit_info.value.code == 2
        assert fragment in capsys.readouterr().err
