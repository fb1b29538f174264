"""Merging quality-bench reports of different seeds (`--merge`)."""

import json

import pytest

from tfkd.bench import quality as quality_bench
from tfkd.bench import quality_merge
from tfkd.bench import retrieval_quality
from tfkd.cli import main as cli

CTR_SETTINGS = {"ensemble_size": 5, "transfer_size": 5.0,
                "recipe": {"alpha": 0.2, "epochs": 60}, "data": "ctr"}
RETRIEVAL_SETTINGS = {"patience": 20, "ensemble_size": 2,
                      "task": "retrieval"}


def _ctr_row(auc, val, params, epochs):
    return {"auc": auc, "val_auc": val, "params": params, "epochs": epochs,
            "best_epoch": epochs - 1, "seconds": 10.0 * epochs,
            "recipe": "r"}


def _ctr_run(scratch, distilled, variant):
    return {"teacher": _ctr_row(0.86, 0.85, 100, 20),
            "teacher_ensemble": _ctr_row(0.87, 0.86, 500, 90),
            "student_scratch": _ctr_row(scratch, scratch, 5, 30),
            "student_distilled": _ctr_row(distilled, distilled - 0.01, 5, 34),
            "kd_ensemble": _ctr_row(variant, variant, 5, 61)}


def _retrieval_row(ndcg, val):
    return {"hr@10": 2 * ndcg, "ndcg@10": ndcg, "full_hr@10": ndcg / 3,
            "full_ndcg@10": ndcg / 6, "val_ndcg@10": val, "params": 20,
            "epochs": 40, "best_epoch": 20, "seconds": 5.0, "recipe": "r"}


def _retrieval_run(in_batch_val, ranking_val):
    return {"teacher": _retrieval_row(0.33, 0.40),
            "teacher_ensemble": _retrieval_row(0.34, 0.41),
            "student_scratch": _retrieval_row(0.30, 0.37),
            "kd_in_batch": _retrieval_row(0.31, in_batch_val),
            "kd_ranking": _retrieval_row(0.32, ranking_val)}


def _report(summarise, runs, seeds, settings):
    report = summarise(runs, seeds)
    report["settings"] = dict(settings, seeds=list(seeds))
    report["wall_seconds"] = 100.0 * len(seeds)
    return json.loads(json.dumps(report))  # as read back from --json


CTR_RUNS = [_ctr_run(0.855, 0.867, 0.866), _ctr_run(0.857, 0.868, 0.865),
            _ctr_run(0.856, 0.869, 0.867)]
# Seed 0 alone would pick in-batch KD on validation, seeds 1 and 2 ranking;
# over all three seeds the mean picks ranking (0.385 > 0.3767).
RETRIEVAL_RUNS = [_retrieval_run(0.39, 0.38), _retrieval_run(0.37, 0.39),
                  _retrieval_run(0.37, 0.385)]


@pytest.mark.parametrize(
    "summarise, runs, settings",
    [(quality_bench.summarise, CTR_RUNS, CTR_SETTINGS),
     (retrieval_quality.summarise, RETRIEVAL_RUNS, RETRIEVAL_SETTINGS)],
    ids=["ctr", "retrieval"])
def test_merge_equals_one_run_of_all_seeds(summarise, runs, settings):
    whole = _report(summarise, runs, [0, 1, 2], settings)
    parts = [_report(summarise, runs[:1], [0], settings),
             _report(summarise, runs[1:], [1, 2], settings)]
    merged = quality_merge.merge_reports(parts)
    # The same numbers summarised in the same order: equal to the last bit.
    assert merged == dict(whole, wall_seconds=300.0)


def test_retrieval_merge_chooses_the_method_again():
    parts = [_report(retrieval_quality.summarise, [run], [seed],
                     RETRIEVAL_SETTINGS)
             for seed, run in enumerate(RETRIEVAL_RUNS)]
    assert parts[0]["distilled_method"] == "kd_in_batch"
    merged = quality_merge.merge_reports(parts)
    assert merged["distilled_method"] == "kd_ranking"
    assert merged["student_distilled"]["ndcg@10_per_seed"] == [0.32] * 3
    assert list(merged["variants"]) == ["kd_in_batch"]


def _ctr_parts(second_settings=None, second_seed=1):
    return [_report(quality_bench.summarise, CTR_RUNS[:1], [0],
                    CTR_SETTINGS),
            _report(quality_bench.summarise, CTR_RUNS[1:2], [second_seed],
                    second_settings or CTR_SETTINGS)]


@pytest.mark.parametrize(
    "reports, fragment",
    [
        (_ctr_parts()[:1], "at least two reports"),
        (_ctr_parts(second_seed=0), "more than one report"),
        (_ctr_parts(dict(CTR_SETTINGS, recipe={"alpha": 0.3, "epochs": 60})),
         r"other settings than report 0 \(recipe\)"),
        (_ctr_parts()[:1] + [{"teacher": {}}], "Report 1 is not a"),
        (_ctr_parts()[:1] + [_report(retrieval_quality.summarise,
                                     RETRIEVAL_RUNS[:1], [1],
                                     RETRIEVAL_SETTINGS)],
         "different tasks"),
    ],
    ids=["one_report", "repeated_seed", "other_recipe", "not_a_report",
         "mixed_tasks"],
)
def test_refuses_what_it_cannot_merge(reports, fragment):
    with pytest.raises(ValueError, match=fragment):
        quality_merge.merge_reports(reports)


def test_refuses_reports_with_other_rows():
    parts = _ctr_parts()
    del parts[1]["variants"]["kd_ensemble"]
    with pytest.raises(ValueError, match="different rows"):
        quality_merge.merge_reports(parts)


class TestCli:
    def test_merges_files_and_prints_the_table(self, tmp_path, capsys):
        paths = []
        for i, part in enumerate(_ctr_parts()):
            paths.append(tmp_path / f"q{i}.json")
            paths[-1].write_text(json.dumps(part))
        out = tmp_path / "q.json"
        assert cli.main(["bench", "--quality", "--merge", *map(str, paths),
                         "--json", str(out)]) == 0
        written = json.loads(out.read_text())
        assert written["settings"]["seeds"] == [0, 1]
        assert written["student_distilled"]["auc_per_seed"] == [0.867, 0.868]
        assert "gap recovery" in capsys.readouterr().err

    def test_log_file_is_one_line_error(self, tmp_path, capsys):
        log = tmp_path / "q0.log"
        log.write_text("seed 0 teacher 1/5: 24 epochs\n")
        assert cli.main(["bench", "--quality", "--merge", str(log),
                         str(log)]) == 1
        err = capsys.readouterr().err.strip()
        assert "is not a JSON report" in err and "\n" not in err

    def test_training_flags_are_refused(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            quality_bench.main(["--merge", "a.json", "b.json", "--epochs",
                                "3"])
        assert exit_info.value.code == 2
        assert "drop --epochs" in capsys.readouterr().err
