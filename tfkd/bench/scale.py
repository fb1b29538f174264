"""Training from files beyond memory: `tfkd bench --scale`.

For each size, writes synthetic MovieLens-shaped CTR shards (chunk by
chunk, so the writer stays flat too), then in a fresh Python process reads
them with `tfkd.datasets.streaming.stream_files` and trains the
`tfkd.models.student` one epoch. Each child reports its rows, seconds,
examples per second and peak resident memory (`ru_maxrss`, which counts
TensorFlow itself: `baseline_rss_mb` is the peak before any data is read).
Memory that stays flat as rows grow is the point: `rss_ratio_<big>_vs_
<small>` is the largest size's peak over the smallest's.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from tfkd.bench import utils as bench_utils

DEFAULT_ROWS = (1_000_000, 10_000_000)
FORMATS = ("csv", "parquet")
# Rows generated and written at once, per shard.
WRITE_CHUNK_ROWS = 250_000
# Runs its arguments as a command and exits with its status.
RELAY = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
# One shard per this many rows when `shards` is None.
SHARD_ROWS = 500_000
MIN_ROWS = 1_000
# Catalogue of the synthetic files: about MovieLens-1M's users, 10K items.
NUM_USERS = 6_040
NUM_ITEMS = 10_000
LABEL = "label"
COLUMNS = ("user_id", "item_id", "age_bucket", "gender", "occupation",
           "release_year_bucket", LABEL)


def _tables(rng):
    """Per-user and per-item features and the biases that set the labels."""
    from tfkd.datasets import schema
    from tfkd.datasets import synthetic

    users = {
        "age_bucket": rng.integers(1, schema.AGE_VOCABULARY_SIZE, NUM_USERS),
        "gender": rng.integers(1, synthetic.NUM_GENDERS + 1, NUM_USERS),
        "occupation": rng.integers(1, synthetic.NUM_OCCUPATIONS + 1,
                                   NUM_USERS),
        "bias": rng.normal(0.0, synthetic.ID_EFFECT_SCALE * 2, NUM_USERS),
    }
    items = {
        "release_year_bucket": rng.integers(1, synthetic.NUM_DECADES + 1,
                                            NUM_ITEMS),
        "bias": rng.normal(0.0, synthetic.ID_EFFECT_SCALE * 2, NUM_ITEMS),
    }
    return users, items


def _chunk(rng, users, items, n):
    u = rng.integers(0, NUM_USERS, n)
    i = rng.integers(0, NUM_ITEMS, n)
    logit = users["bias"][u] + items["bias"][i]
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return pd.DataFrame({
        "user_id": u + 1,
        "item_id": i + 1,
        "age_bucket": users["age_bucket"][u],
        "gender": users["gender"][u],
        "occupation": users["occupation"][u],
        "release_year_bucket": items["release_year_bucket"][i],
        LABEL: label,
    })


def write_shards(folder, rows, shards, fmt="csv", seed=0):
    """Writes `rows` synthetic CTR rows as `shards` files in `folder`.

    Users and items carry MovieLens-shaped features (`tfkd.datasets.
    synthetic`'s vocabularies); a click is drawn with probability
    `sigmoid(user bias + item bias)`. No more than `WRITE_CHUNK_ROWS` rows
    are in memory at once.

    Args:
        folder: str. Created if missing.
        rows: int. Rows in all.
        shards: int. Files; rows are spread evenly.
        fmt: str. `"csv"` or `"parquet"`. Defaults to `"csv"`.
        seed: int. Defaults to `0`.

    Returns:
        list of str: the shard paths, in name order.

    Example:

    ```python
    write_shards("/tmp/clicks", rows=100_000, shards=4)
    ```
    """
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {FORMATS}. Received: {fmt!r}")
    if not 1 <= shards <= rows:
        raise ValueError(
            "`shards` must be in [1, rows]. Received: "
            f"shards={shards}, rows={rows}"
        )
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    users, items = _tables(rng)
    sizes = np.diff(np.linspace(0, rows, shards + 1).astype(np.int64))
    paths = []
    for k, size in enumerate(sizes):
        path = os.path.join(folder, f"part-{k:05d}.{fmt}")
        chunks = (_chunk(rng, users, items, min(WRITE_CHUNK_ROWS, size - s))
                  for s in range(0, size, WRITE_CHUNK_ROWS))
        (_write_csv if fmt == "csv" else _write_parquet)(path, chunks)
        paths.append(path)
    return paths


def _write_csv(path, chunks):
    with open(path, "w", newline="") as f:
        f.write(",".join(COLUMNS) + "\n")
        for frame in chunks:
            frame.to_csv(f, header=False, index=False)


def _write_parquet(path, chunks):
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for frame in chunks:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def train_from_files(folder, batch_size=1024, seed=0):
    """Streams `folder` and trains the student one epoch (the child's work).

    Args:
        folder: str. Shards written by `write_shards`.
        batch_size: int. Defaults to `1024`.
        seed: int. Split, shuffle and model seed. Defaults to `0`.

    Returns:
        dict: `rows` (in the files), `train_rows`, `trained_examples`
        (counted as batches reach the model), `check_seconds` (the
        checking pass), `train_seconds`, `seconds`, `examples_per_s`
        (trained examples over training seconds), `baseline_rss_mb` and
        `peak_rss_mb`, `loss`.

    Example:

    ```python
    train_from_files("/tmp/clicks")["examples_per_s"]
    ```
    """
    import keras
    import tensorflow as tf

    from tfkd import models
    from tfkd.datasets.streaming import stream_files

    keras.utils.set_random_seed(seed)
    baseline = peak_rss_mb()
    start = time.perf_counter()
    data = stream_files(folder, label=LABEL, seed=seed, batch_size=batch_size)
    checked = time.perf_counter()
    student = models.student(data.spec)
    student.compile(optimizer="adam",
                    loss=keras.losses.BinaryCrossentropy(from_logits=True))
    seen = tf.Variable(0, dtype=tf.int64, trainable=False)

    def count(features, label):
        seen.assign_add(tf.shape(label, out_type=tf.int64)[0])
        return features, label

    history = student.fit(data.train.map(count), epochs=1, verbose=0)
    done = time.perf_counter()
    trained = int(seen.numpy())
    return {
        "rows": sum(data.rows.values()),
        "train_rows": data.rows["train"],
        "trained_examples": trained,
        "check_seconds": checked - start,
        "train_seconds": done - checked,
        "seconds": done - start,
        "examples_per_s": trained / (done - checked),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
        "loss": float(history.history["loss"][-1]),
    }


def peak_rss_mb():
    """This process's peak resident memory so far, in MiB (`ru_maxrss`)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def run_scale_bench(rows=DEFAULT_ROWS, shards=None, workdir=None,
                    json_path=None, fmt="csv", batch_size=1024, seed=0,
                    keep_files=False):
    """Trains from synthetic shards of each size, each in a fresh process.

    Args:
        rows: iterable of int. Sizes to run, each >= 1,000 rows. Defaults
            to `(1_000_000, 10_000_000)`.
        shards: int or None. Files per size; None writes one per
            `SHARD_ROWS` rows. Defaults to `None`.
        workdir: str or None. Where the shards go (one folder per size,
            deleted after its run unless `keep_files`); None uses a
            temporary folder. Defaults to `None`.
        json_path: str or None. Also write the report there. Defaults to
            `None`.
        fmt: str. `"csv"` or `"parquet"`. Defaults to `"csv"`.
        batch_size: int. Defaults to `1024`.
        seed: int. Defaults to `0`.
        keep_files: bool. Keep the shards. Defaults to `False`.

    Returns:
        dict: `rows` maps each size (a string) to its child's report plus
        `shards` and `write_seconds`; `rss_ratio_<big>_vs_<small>` (e.g.
        `rss_ratio_10m_vs_1m`) when two sizes or more ran; the settings
        and package versions.

    Raises:
        ValueError: on a size below 1,000 rows or an unknown format.
        RuntimeError: if a child fails (with the end of its output).

    Example:

    ```python
    report = run_scale_bench(rows=(20_000, 40_000), json_path="s.json")
    ```
    """
    sizes = _validate_sizes(rows, fmt)
    own = workdir is None
    workdir = tempfile.mkdtemp(prefix="tfkd-scale-") if own else workdir
    report = {"format": fmt, "batch_size": batch_size, "seed": seed,
              "rows": {}}
    try:
        for n in sizes:
            report["rows"][str(n)] = _run_size(
                os.path.join(workdir, f"rows-{n}"), n, shards, fmt,
                batch_size, seed, keep_files,
            )
    finally:
        if own and not keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(sizes) > 1:
        small, big = report["rows"][str(sizes[0])], report["rows"][
            str(sizes[-1])]
        key = f"rss_ratio_{_short(sizes[-1])}_vs_{_short(sizes[0])}"
        report[key] = big["peak_rss_mb"] / small["peak_rss_mb"]
    report["writer_peak_rss_mb"] = peak_rss_mb()
    report["versions"] = bench_utils.package_versions(
        ["tensorflow", "keras", "pandas", "pyarrow"]
    )
    if json_path is not None:
        bench_utils.write_json(report, json_path)
    return report


def _validate_sizes(rows, fmt):
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {FORMATS}. Received: {fmt!r}")
    sizes = sorted(int(n) for n in rows)
    if not sizes or sizes[0] < MIN_ROWS:
        raise ValueError(
            f"`rows` must hold sizes >= {MIN_ROWS:,}. Received: rows={rows}"
        )
    return sizes


def _short(n):
    for unit, size in (("m", 1_000_000), ("k", 1_000)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _run_size(folder, n, shards, fmt, batch_size, seed, keep_files):
    count = shards or max(1, math.ceil(n / SHARD_ROWS))
    start = time.perf_counter()
    write_shards(folder, n, count, fmt, seed)
    written = time.perf_counter() - start
    try:
        result = _run_child(folder, batch_size, seed)
    finally:
        if not keep_files:
            shutil.rmtree(folder, ignore_errors=True)
    return {**result, "shards": count, "write_seconds": written}


def _run_child(folder, batch_size, seed):
    out = os.path.join(folder, "child.json")
    # Linux keeps the peak RSS of the process that starts a program in the
    # program's ru_maxrss (through fork and exec): started straight from
    # here, every child would report at least this process's peak. A
    # small relay process starts it instead, so it reports its own.
    command = [sys.executable, "-c", RELAY,
               sys.executable, "-m", "tfkd.bench.scale", "--child", folder,
               "--batch-size", str(batch_size), "--seed", str(seed),
               "--json", out]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"The scale bench child on {folder} failed (exit "
            f"{proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return bench_utils.read_json(out)


def main(argv=None):
    """`python -m tfkd.bench.scale` (`tfkd bench --scale`): prints the JSON.

    Args:
        argv: list of str or None. Defaults to `sys.argv[1:]`.

    Returns:
        int: the exit status, 0.

    Example:

    ```python
    main(["--rows", "20000", "40000", "--json", "scale.json"])
    ```
    """
    parser = argparse.ArgumentParser(
        prog="tfkd bench --scale",
        description="Train from synthetic shards of each size; report "
        "seconds, examples/s and peak RSS.",
    )
    parser.add_argument("--rows", type=int, nargs="+",
                        default=list(DEFAULT_ROWS))
    parser.add_argument("--shards", type=int, default=None,
                        help=f"files per size (default: one per "
                        f"{SHARD_ROWS:,} rows)")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write it here")
    parser.add_argument("--workdir", default=None,
                        help="where shards go (default: a temp folder)")
    parser.add_argument("--keep-files", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        report = train_from_files(args.child, args.batch_size, args.seed)
        bench_utils.write_json(report, args.json)
        return 0
    report = run_scale_bench(
        rows=args.rows, shards=args.shards, workdir=args.workdir,
        json_path=args.json, fmt=args.format, batch_size=args.batch_size,
        seed=args.seed, keep_files=args.keep_files,
    )
    bench_utils.write_json(report, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
