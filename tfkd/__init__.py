"""tfkd: knowledge distillation for Keras recommenders, shipped to LiteRT.

Submodules load on first access (PEP 562), so `import tfkd` works where
TensorFlow is not installed (Keras on JAX). The modules that register
Keras classes for `keras.models.load_model` are still imported here,
each one whose imports succeed.
"""

import importlib
import os

from tfkd._internal import tensorflow_optional

# TensorFlow's C++ start-up chatter buries Keras' progress bars in notebooks.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_SUBMODULES = (
    "callbacks",
    "datasets",
    "evaluation",
    "export",
    "losses",
    "models",
    "teachers",
)
_ATTRIBUTES = {
    "Distiller": "tfkd.distillers.distiller",
    "FeatureDistillation": "tfkd.distillers.feature_distillation",
    "RetrievalDistiller": "tfkd.distillers.retrieval_distiller",
}
# Importing these registers `tfkd>...` classes, so that `import tfkd` is
# enough to load a saved Distiller or student, as it was before the
# imports became lazy.
_KERAS_OBJECT_MODULES = (
    "tfkd.losses",
    "tfkd.callbacks",
    "tfkd.models",
    "tfkd.distillers.distiller",
    "tfkd.distillers.feature_distillation",
    "tfkd.distillers.retrieval_distiller",
    "tfkd.teachers",
)

__all__ = [
    "Distiller",
    "FeatureDistillation",
    "RetrievalDistiller",
    *_SUBMODULES,
    "__version__",
]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfkd.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'tfkd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _register_keras_objects():
    for module in _KERAS_OBJECT_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            # Without TensorFlow the modules that need it stay unloaded;
            # `tfkd.<name>` then raises this same error when used.
            if not tensorflow_optional.is_missing_tensorflow(error):
                raise


if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
    # Before Keras imports TensorFlow: its start-up lines are not for users.
    from tfkd._internal.native_logs import import_tensorflow_quietly  # noqa: E402

    import_tensorflow_quietly()
_register_keras_objects()
