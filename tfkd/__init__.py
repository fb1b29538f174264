"""tfkd: knowledge distillation for Keras recommenders, shipped to LiteRT."""

import os

# TensorFlow's C++ start-up chatter buries Keras' progress bars in notebooks.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfkd import callbacks  # noqa: E402
from tfkd import datasets  # noqa: E402
from tfkd import evaluation  # noqa: E402
from tfkd import export  # noqa: E402
from tfkd import losses  # noqa: E402
from tfkd import models  # noqa: E402
from tfkd.distiller import Distiller  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "callbacks",
    "datasets",
    "evaluation",
    "export",
    "losses",
    "models",
    "__version__",
]
