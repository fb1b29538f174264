"""One worker of the MultiWorkerMirroredStrategy test (run as a subprocess).

Usage: python mwms_worker.py OUT.npz   with TF_CONFIG set by the caller.
Without TF_CONFIG it trains the same way without a strategy, as the reference.
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
    inputs = keras.Input((6,))
    z = keras.layers.Dense(
        hidden,
        "relu",
        kernel_initializer=keras.initializers.GlorotUniform(seed),
    )(inputs)
    outputs = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)
    )(z)
    return keras.Model(inputs, outputs)


def dataset():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return ds.with_options(options)


def main(out_path):
    if "TF_CONFIG" in os.environ:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    with strategy.scope():
        distiller = tfkd.Distiller(teacher=mlp(16, 31), student=mlp(8, 41))
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.5), alpha=0.3, temperature=2.0
        )
    history = distiller.fit(dataset(), epochs=2, verbose=0)
    np.savez(
        out_path,
        *[w.numpy() for w in distiller.student.weights],
        history=json.dumps(history.history),
        replicas=strategy.num_replicas_in_sync,
    )


if __name__ == "__main__":
    main(sys.argv[1])
