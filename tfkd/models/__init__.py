"""Teacher and student builders: ranking (CTR / rating) and retrieval."""

import importlib

from tfkd.models.feature_embedding import FeatureEmbedding
from tfkd.models.masked_mean_pooling import MaskedMeanPooling
from tfkd.models.presets import student
from tfkd.models.presets import teacher
from tfkd.models.ranking_model import ranking_model
from tfkd.models.safe_ids import SafeIds

# The two-tower model trains with tf.GradientTape. Without TensorFlow
# (Keras on JAX) it stays unloaded and the ranking builders still work;
# using it then raises the missing-TensorFlow error.
_NEED_TENSORFLOW = {
    "TwoTowerModel": "tfkd.models.two_tower",
    "two_tower": "tfkd.models.two_tower",
}
try:
    from tfkd.models.two_tower import TwoTowerModel
    from tfkd.models.two_tower import two_tower
except ModuleNotFoundError as error:
    if not (error.name or "").startswith("tensorflow"):
        raise


def __getattr__(name):
    if name in _NEED_TENSORFLOW:
        importlib.import_module(_NEED_TENSORFLOW[name])
    raise AttributeError(f"module 'tfkd.models' has no attribute {name!r}")


__all__ = [
    "FeatureEmbedding",
    "MaskedMeanPooling",
    "SafeIds",
    "TwoTowerModel",
    "ranking_model",
    "student",
    "teacher",
    "two_tower",
]
