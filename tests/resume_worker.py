"""One training run of the resume test (run as a subprocess).

Usage:
    python resume_worker.py OUT.npz BACKUP_DIR [--callback tfkd|keras]
        [--save-freq N|epoch] [--kill-at EPOCH:BATCH]

Distils a hand-built teacher into a hand-built student (dict inputs, plain
`keras.layers.Embedding`) on seeded NumPy data for `EPOCHS` epochs, with a
`TemperatureScheduler`, an `AlphaScheduler` and a backup callback. With
`--kill-at` the process SIGKILLs itself after that batch (0-indexed), as a
preempted job would die. Writes the student's weights, `alpha`,
`temperature` (Python values and variables), the optimizer's iteration
count and where this run started (the epoch and iteration after the
restore) to OUT.npz. With TF_CONFIG set it is one worker of a
MultiWorkerMirroredStrategy, reading a sharded `tf.data` pipeline of the
same batches. tests/test_resume.py runs it.
"""

import argparse
import json
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfkd  # noqa: E402

ROWS = 96
BATCH = 8  # 12 batches an epoch
EPOCHS = 3
VOCAB = 20


def temperature_schedule(epoch, current):
    return 4.0 / (epoch + 1)  # 4, 2, 4/3


def alpha_schedule(epoch, current):
    return 0.2 + 0.3 * epoch  # 0.2, 0.5, 0.8


def model(name, width, seed):
    user = keras.Input((1,), name="user", dtype="int32")
    item = keras.Input((1,), name="item", dtype="int32")
    embed = keras.layers.Embedding(VOCAB, width)
    x = keras.layers.Concatenate()([
        keras.layers.Flatten()(embed(user)),
        keras.layers.Flatten()(embed(item)),
    ])
    x = keras.layers.Dense(width, activation="relu")(x)
    out = keras.layers.Dense(1)(x)
    built = keras.Model({"user": user, "item": item}, out, name=name)
    # Weights from NumPy: every process starts from the same numbers.
    rng = np.random.default_rng(seed)
    built.set_weights([
        rng.normal(0.0, 0.5, w.shape).astype("float32")
        for w in built.get_weights()
    ])
    return built


def data():
    rng = np.random.default_rng(0)
    features = {
        "user": rng.integers(0, VOCAB, (ROWS, 1)).astype("int32"),
        "item": rng.integers(0, VOCAB, (ROWS, 1)).astype("int32"),
    }
    labels = ((features["user"] + features["item"]) % 2).astype("float32")
    return features, labels


def sharded_dataset():
    """The same global batches as a `tf.data` pipeline sharded by data."""
    dataset = tf.data.Dataset.from_tensor_slices(data()).batch(BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)


def distiller(build=True, strategy=None):
    keras.utils.set_random_seed(7)
    with (strategy or tf.distribute.get_strategy()).scope():
        result = tfkd.Distiller(model("teacher", 8, 1),
                                model("student", 4, 2))
        result.compile(optimizer=keras.optimizers.Adam(0.05), alpha=0.1,
                       temperature=3.0)
    if build:
        # BackupAndRestore restores before the first step would build it.
        features, _ = data()
        result({key: value[:1] for key, value in features.items()})
    return result


class KillAt(keras.callbacks.Callback):
    """SIGKILLs the process after batch `batch` of epoch `epoch`.

    Under MultiWorkerMirroredStrategy every worker first waits at a file
    barrier in `barrier_dir`: a worker that kills itself as soon as its own
    all-reduce returned can close the socket before a peer has received the
    last buffer of the same step, and that peer then fails (exit 1) instead
    of being killed after the batch, as the test means.
    """

    def __init__(self, epoch, batch, barrier_dir=None):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None
        self.barrier_dir = barrier_dir

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            sys.stdout.flush()
            if self.barrier_dir is not None:
                _wait_for_workers(self.barrier_dir)
            os.kill(os.getpid(), signal.SIGKILL)


def _wait_for_workers(barrier_dir, timeout=120.0):
    config = json.loads(os.environ["TF_CONFIG"])
    workers = len(config["cluster"]["worker"])
    os.makedirs(barrier_dir, exist_ok=True)
    open(os.path.join(barrier_dir, str(config["task"]["index"])), "w").close()
    deadline = time.monotonic() + timeout
    while len(os.listdir(barrier_dir)) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers never all reached {barrier_dir}")
        time.sleep(0.05)


class StartProbe(keras.callbacks.Callback):
    """Records where training starts: after the backup callback restored."""

    def __init__(self):
        super().__init__()
        self.iterations = None
        self.epoch = None

    def on_train_begin(self, logs=None):
        self.iterations = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        if self.epoch is None:
            self.epoch = epoch


def variable(model_, path):
    """The value of the Distiller's own variable `path`."""
    (found,) = [v for v in model_.non_trainable_variables if v.path == path]
    return float(found.numpy())


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("backup_dir")
    parser.add_argument("--callback", choices=("tfkd", "keras"),
                        default="tfkd")
    parser.add_argument("--save-freq", default="epoch")
    parser.add_argument("--kill-at", default=None)
    args = parser.parse_args(argv)
    save_freq = args.save_freq
    if save_freq != "epoch":
        save_freq = int(save_freq)
    backup_class = (tfkd.callbacks.BackupAndRestore
                    if args.callback == "tfkd"
                    else keras.callbacks.BackupAndRestore)
    probe = StartProbe()
    callbacks = [
        backup_class(args.backup_dir, save_freq=save_freq),
        tfkd.callbacks.TemperatureScheduler(temperature_schedule),
        tfkd.callbacks.AlphaScheduler(alpha_schedule),
        probe,
    ]
    if args.kill_at:
        epoch, batch = (int(v) for v in args.kill_at.split(":"))
        barrier = None
        if "TF_CONFIG" in os.environ:
            # Shared by the workers: each has its own backup directory.
            barrier = os.path.join(
                os.path.dirname(os.path.abspath(args.backup_dir)),
                "kill-barrier")
        callbacks.append(KillAt(epoch, batch, barrier))
    if "TF_CONFIG" in os.environ:
        model_ = distiller(
            strategy=tf.distribute.MultiWorkerMirroredStrategy()
        )
        model_.fit(sharded_dataset(), epochs=EPOCHS, shuffle=False,
                   verbose=0, callbacks=callbacks)
    else:
        model_ = distiller()
        features, labels = data()
        model_.fit(features, labels, batch_size=BATCH, epochs=EPOCHS,
                   shuffle=False, verbose=0, callbacks=callbacks)
    print(f"started at epoch {probe.epoch}, iteration {probe.iterations}")
    np.savez(
        args.out,
        *[w.numpy() for w in model_.student.weights],
        alpha=model_.alpha,
        temperature=model_.temperature,
        alpha_variable=variable(model_, "alpha"),
        temperature_variable=variable(model_, "temperature"),
        iterations=int(model_.optimizer.iterations.numpy()),
        start_epoch=probe.epoch,
        start_iterations=probe.iterations,
    )


if __name__ == "__main__":
    main()
