"""A small seeded Keras model on dense features, for Distiller tests.

Shared by the loss-function and mixed-precision tests, which need a
teacher and a student with one logit and nothing else in the way.
"""

import keras
import numpy as np

FEATURES = 6


def dense_model(seed):
    """`FEATURES` floats in, Dense(8, relu), one logit out, seeded.

    Args:
        seed: int. Kernel initializer seeds `seed` and `seed + 1`.

    Returns:
        A Functional `keras.Model`.
    """
    inputs = keras.Input((FEATURES,))
    z = keras.layers.Dense(
        8, "relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(inputs)
    outputs = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)
    )(z)
    return keras.Model(inputs, outputs)


def sigmoid(z):
    """NumPy sigmoid, the reference the tests check the losses against."""
    return 1.0 / (1.0 + np.exp(-z))
