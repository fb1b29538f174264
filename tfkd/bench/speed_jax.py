"""The speed bench on Keras' JAX backend: NumPy feeds, a jitted reference.

Imports no TensorFlow: it runs where only JAX and Keras are installed.
The `reference` path is the floor the Keras paths are held to: the same
student, teacher, loss and Adam, written as one `jax.jit` step over
`stateless_call`, with no `fit` machinery around it.
"""

import functools
import time

import jax
import keras
import numpy as np
from jax import numpy as jnp

from tfkd.bench import speed_paths as paths_module

PACKAGES = ("tfkd", "keras", "jax", "jaxlib", "keras-rs", "numpy")


def prepare(settings):
    """Data as NumPy arrays (Keras slices them per batch); models; paths.

    Args:
        settings: `SpeedSettings`.

    Returns:
        `SpeedSetup`; `extra["batches"]` holds the `(x, y)` NumPy batches
        the hand-written loops read.
    """
    setup = paths_module.build_setup(
        settings,
        _feed,
        {
            "teacher_forward": make_teacher_forward_path,
            "reference": make_reference_path,
        },
        devices=[str(device) for device in jax.devices()],
        packages=PACKAGES,
    )
    feed = setup.feed
    setup.extra["batches"] = _batches(
        feed["x"], feed["y"], settings.batch_size
    )
    return setup


def _feed(features, labels, batch_size):
    return {"x": features, "y": labels, "batch_size": batch_size,
            "shuffle": False}


def _batches(features, labels, batch_size):
    return [
        ({k: v[i:i + batch_size] for k, v in features.items()},
         labels[i:i + batch_size])
        for i in range(0, len(labels), batch_size)
    ]


def _state(model):
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
    )


def make_teacher_forward_path(setup):
    """The teacher's jitted forward pass over every batch of the epoch.

    Dispatch is asynchronous, so Python's per-batch cost overlaps the
    compute; the epoch ends when the last result is ready.
    """
    teacher = setup.teacher

    @jax.jit
    def forward(weights, x):
        logits, _ = teacher.stateless_call(*weights, x, training=False)
        return jnp.sum(logits)

    def run():
        # Read now: Keras' JAX `fit` donates and replaces the buffers of
        # every variable of the model it trains, the teacher's included.
        weights = _state(teacher)
        start = time.perf_counter()
        total = 0.0
        for x, _ in setup.extra["batches"]:
            total = total + forward(weights, x)
        jax.block_until_ready(total)
        return time.perf_counter() - start

    return run


def distillation_loss(labels, student_logits, teacher_logits, alpha, t):
    """The Distiller's binary loss, written in `jax.numpy`.

    ```
    alpha * bce(y, s) + (1 - alpha) * t**2 * KL(sigmoid(tl/t) || sigmoid(s/t))
    ```
    """
    s = student_logits.reshape(-1)
    teacher = teacher_logits.reshape(-1)
    bce = jnp.mean(jax.nn.softplus(s) - labels.reshape(-1) * s)
    p = jax.nn.sigmoid(teacher / t)
    kl = p * (jax.nn.softplus(-s / t) - jax.nn.softplus(-teacher / t)) + (
        1.0 - p
    ) * (jax.nn.softplus(s / t) - jax.nn.softplus(teacher / t))
    return alpha * bce + (1.0 - alpha) * t**2 * jnp.mean(kl)


def make_reference_path(setup):
    """One `jax.jit` step: teacher forward, student gradient, Adam."""
    teacher, settings = setup.teacher, setup.settings
    student = paths_module.new_student(setup)
    optimizer = keras.optimizers.Adam()
    optimizer.build(student.trainable_variables)
    trainable, non_trainable = _state(student)
    state = [trainable, non_trainable, [v.value for v in optimizer.variables]]

    def loss_fn(trainable, non_trainable, x, y, teacher_logits):
        logits, non_trainable = student.stateless_call(
            trainable, non_trainable, x, training=True
        )
        loss = distillation_loss(
            y, logits, teacher_logits, settings.alpha, settings.temperature
        )
        return loss, non_trainable

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(state, teacher_weights, x, y):
        trainable, non_trainable, optimizer_state = state
        teacher_logits, _ = teacher.stateless_call(
            *teacher_weights, x, training=False
        )
        (loss, non_trainable), grads = jax.value_and_grad(
            loss_fn, has_aux=True
        )(trainable, non_trainable, x, y, teacher_logits)
        trainable, optimizer_state = optimizer.stateless_apply(
            optimizer_state, grads, trainable
        )
        return [trainable, non_trainable, optimizer_state], loss

    def run():
        nonlocal state
        teacher_weights = _state(teacher)  # see make_teacher_forward_path
        start = time.perf_counter()
        loss = None
        for x, y in setup.extra["batches"]:
            state, loss = step(state, teacher_weights, x, y)
        if not np.isfinite(float(loss)):
            raise FloatingPointError(f"reference loss is {float(loss)}")
        return time.perf_counter() - start

    return run
