"""The speed bench on Keras' TensorFlow backend: tf.data feeds."""

import time

import tensorflow as tf

from tfkd.bench import speed_paths as paths_module

PACKAGES = ("tfkd", "keras", "tensorflow", "keras-rs", "numpy")


def prepare(settings):
    """Data as cached, prefetched `tf.data` pipelines; models; paths.

    Args:
        settings: `SpeedSettings`.

    Returns:
        `SpeedSetup`.
    """
    return paths_module.build_setup(
        settings,
        _feed,
        {"teacher_forward": make_teacher_forward_path},
        devices=[d.name for d in tf.config.list_logical_devices()],
        packages=PACKAGES,
    )


def _feed(features, labels, batch_size):
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    dataset = dataset.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)
    # Same order every epoch, on every path; `shuffle=False` also stops
    # Keras warning that it cannot shuffle a dataset.
    return {"x": dataset, "shuffle": False}


def make_teacher_forward_path(setup):
    """One `tf.function` runs the teacher over the whole epoch.

    The loop is inside the graph, so no per-batch Python cost is counted:
    this is the teacher's compute alone, the term `limit` adds to the
    student's step.
    """
    teacher = setup.teacher
    dataset = setup.feed["x"]

    @tf.function
    def forward_epoch():
        total = tf.constant(0.0)
        for x, _ in dataset:
            total += tf.reduce_sum(teacher(x, training=False))
        return total

    def run():
        start = time.perf_counter()
        forward_epoch().numpy()
        return time.perf_counter() - start

    return run
