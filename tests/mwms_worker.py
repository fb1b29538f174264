"""One worker of the MultiWorkerMirroredStrategy test (run as a subprocess).

Usage: python mwms_worker.py OUT.npz [live|cached]   with TF_CONFIG set by
the caller. Without TF_CONFIG it trains the same way without a strategy, as
the reference. `cached` scores the data with the teacher once
(`tfkd.teachers.cache_logits`) and trains from that column
(`CachedLogits`): offline distillation across workers.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfkd  # noqa: E402

keras.config.disable_traceback_filtering()

GLOBAL_BATCH = 16


def mlp(hidden, seed):
    inputs = keras.Input((6,), name="x")
    z = keras.layers.Dense(
        hidden,
        "relu",
        kernel_initializer=keras.initializers.GlorotUniform(seed),
    )(inputs)
    outputs = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)
    )(z)
    return keras.Model(inputs, outputs)


def dataset(teacher=None):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    features = {"x": x}
    if teacher is not None:
        features = tfkd.teachers.cache_logits(teacher, features)
    ds = tf.data.Dataset.from_tensor_slices((features, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return ds.with_options(options)


def main(out_path, mode="live"):
    if "TF_CONFIG" in os.environ:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    cached = mode == "cached"
    # The same seeded teacher either way; offline, it scores the data once
    # before training and is not part of the Distiller.
    data = dataset(mlp(16, 31) if cached else None)
    with strategy.scope():
        teacher = tfkd.teachers.CachedLogits() if cached else mlp(16, 31)
        distiller = tfkd.Distiller(teacher=teacher, student=mlp(8, 41))
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.5), alpha=0.3, temperature=2.0
        )
    history = distiller.fit(data, epochs=2, verbose=0)
    np.savez(
        out_path,
        *[w.numpy() for w in distiller.student.weights],
        history=json.dumps(history.history),
        replicas=strategy.num_replicas_in_sync,
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
