"""Teacher and student builders: ranking (CTR / rating) and retrieval."""

from tfkd._internal import tensorflow_optional
from tfkd.models.feature_embedding import FeatureEmbedding
from tfkd.models.presets import student
from tfkd.models.presets import teacher
from tfkd.models.ranking_model import ranking_model

# The two-tower model trains with tf.GradientTape. Without TensorFlow
# (Keras on JAX) it stays unloaded and the ranking builders still work;
# using it then raises the missing-TensorFlow error.
_NEED_TENSORFLOW = {
    "TwoTowerModel": "tfkd.models.two_tower",
    "two_tower": "tfkd.models.two_tower",
}
tensorflow_optional.bind(globals(), _NEED_TENSORFLOW)
__getattr__ = tensorflow_optional.missing_attribute(
    __name__, _NEED_TENSORFLOW
)

__all__ = [
    "FeatureEmbedding",
    "TwoTowerModel",
    "ranking_model",
    "student",
    "teacher",
    "two_tower",
]
