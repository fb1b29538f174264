"""Your own data and model: a click log, a hand-built teacher, requests.

The first step of README.md's "Your own model and data", run by
`tools/own_data_walkthrough.sh`:

```
.venv/bin/python tools/own_data_example.py WORK
```

writes into the folder WORK:

- `clicks.csv`: 40,000 plays of a music app with its own column names,
  `user,track,hour,price,clicked`, as a warehouse writes them: text user
  and track ids (`u00042`, `trk-0007`), the hour of day from 0, a float
  price. Clicks depend on the user, the track, their match, the hour and
  the price, so an AUC measures something.
- `teacher.keras`: a hand-built Keras teacher (dict inputs by name, plain
  `keras.layers.Embedding`, an MLP, a logit head) trained on the file as
  `tfkd.datasets.from_files` splits it.
- `requests.json`: three requests for `export/run_tflite.py`, with the
  raw ids an app has: a known user, the same with no user (null) and
  with a user id that training never saw.
"""

import argparse
import json
import os

# First: tfkd imports TensorFlow without its start-up log lines.
import tfkd

# isort: split
import keras
import numpy as np
import pandas as pd

NUM_ROWS = 40_000
NUM_USERS = 1_000
NUM_TRACKS = 300
TASTE_DIM = 4
# A user id that is not in the file: the exported model scores it as
# id 0, the unknown user.
NEW_USER = "u99999"
ID_COLUMNS = ("user", "track", "hour")
SEED = 0


def click_log(num_rows=NUM_ROWS, seed=SEED):
    """A seeded click log whose labels a model can learn.

    Users are `u00001`..`u01000`, tracks `trk-0001`..`trk-0300` and the
    hour of day is 0..23, as an app logs them: `from_files` builds each
    column's vocabulary.

    Args:
        num_rows: int. Defaults to `40_000`.
        seed: int. Defaults to `0`.

    Returns:
        A DataFrame with int columns `user`, `track`, `hour`, `clicked`
        and a float column `price`.
    """
    rng = np.random.default_rng(seed)
    # Popular tracks are played more: probability ~ 1 / rank**0.8.
    popularity = 1.0 / np.arange(1, NUM_TRACKS + 1) ** 0.8
    track = 1 + rng.choice(NUM_TRACKS, num_rows,
                           p=popularity / popularity.sum())
    user = rng.integers(1, NUM_USERS + 1, num_rows)
    hour = rng.integers(0, 24, num_rows)
    price = np.round(rng.lognormal(0.7, 0.5, num_rows), 2)
    logit = _click_logit(rng, user, track, hour, price)
    clicked = rng.random(num_rows) < 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame({
        "user": [f"u{u:05d}" for u in user],
        "track": [f"trk-{t:04d}" for t in track],
        "hour": hour, "price": price, "clicked": clicked.astype(int),
    })


def _click_logit(rng, user, track, hour, price):
    # Row 0 of each table is unused: the raw ids start at 1.
    user_taste = rng.normal(size=(NUM_USERS + 1, TASTE_DIM))
    track_style = rng.normal(size=(NUM_TRACKS + 1, TASTE_DIM))
    user_bias = rng.normal(0.0, 0.6, NUM_USERS + 1)
    track_bias = rng.normal(0.0, 0.8, NUM_TRACKS + 1)
    match = np.sum(user_taste[user] * track_style[track], axis=1) / 2.0
    evening = np.cos(2 * np.pi * (hour - 21) / 24)
    return (match + user_bias[user] + track_bias[track] + 0.5 * evening
            - 0.8 * np.log(price) + 0.5)


def hand_built_teacher(spec):
    """The user's own teacher: nothing from `tfkd.models`.

    Args:
        spec: `tfkd.datasets.FeatureSpec` of the file (table sizes, and
            the price's mean and std).

    Returns:
        A `keras.Model` taking `{"user", "track", "hour", "price"}` and
        returning one logit per example.
    """
    inputs = {name: keras.Input((), dtype="int32", name=name)
              for name in ID_COLUMNS}
    inputs["price"] = keras.Input((), dtype="float32", name="price")
    parts = [
        keras.layers.Embedding(spec[name].vocabulary_size, 16,
                               name=f"{name}_embedding")(inputs[name])
        for name in ID_COLUMNS
    ]
    price = spec["price"]
    parts.append(keras.layers.Normalization(
        mean=price.mean, variance=price.std**2, name="price_scaling"
    )(keras.layers.Reshape((1,))(inputs["price"])))
    x = keras.layers.Concatenate()(parts)
    for units in (128, 64):
        x = keras.layers.Dense(units, activation="relu")(x)
    logit = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, logit, name="my_teacher")


def train_teacher(data, epochs=4):
    """Fits the teacher on the hard labels; returns it and its test AUC."""
    teacher = hand_built_teacher(data.spec)
    teacher.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=1, restore_best_weights=True
    )
    teacher.fit(data.train, validation_data=data.val, epochs=epochs,
                callbacks=[stop], verbose=0,
                shuffle=False)  # data.train is shuffled by tf.data
    return teacher, teacher.evaluate(data.test, verbose=0,
                                     return_dict=True)["auc"]


def requests_for(row):
    """A known user, no user and a never-seen user, on one raw row."""
    known = {"user": row["user"], "track": row["track"],
             "hour": int(row["hour"]), "price": round(float(row["price"]), 2)}
    return [known, {**known, "user": None}, {**known, "user": NEW_USER}]


def main(argv=None):
    """Writes clicks.csv, teacher.keras and requests.json into WORK."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", help="folder for the files (created)")
    work = parser.parse_args(argv).work
    os.makedirs(work, exist_ok=True)
    keras.utils.set_random_seed(SEED)
    log = click_log()
    csv_path = os.path.join(work, "clicks.csv")
    log.to_csv(csv_path, index=False)
    print(f"{csv_path}: {len(log):,} rows, {log['clicked'].mean():.1%} "
          f"clicked, {log['user'].nunique():,} users, "
          f"{log['track'].nunique()} tracks, hours 0-23")
    data = tfkd.datasets.from_files(csv_path, label="clicked")
    teacher, auc = train_teacher(data)
    teacher_path = os.path.join(work, "teacher.keras")
    teacher.save(teacher_path)
    print(f"{teacher_path}: {teacher.count_params():,} params, "
          f"test AUC {auc:.4f}")
    requests_path = os.path.join(work, "requests.json")
    # The first test row, as the file holds it (the app's raw ids).
    test = tfkd.datasets.splits.random_codes(len(log)) == 2
    with open(requests_path, "w") as f:
        json.dump(requests_for(log[test].iloc[0]), f)
    print(f"{requests_path}: a known user, no user (null), user {NEW_USER} "
          "(new)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
