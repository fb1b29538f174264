"""Test set-up shared by the whole suite.

The CPU is split into two logical devices before TensorFlow touches it, so
`tf.distribute.MirroredStrategy` runs with two real replicas on any machine.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI gates on the suite, so property tests draw the same examples every run.
# TFKD_HYPOTHESIS=explore draws new ones (and keeps failures) when hunting.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("TFKD_HYPOTHESIS", "ci"))

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
