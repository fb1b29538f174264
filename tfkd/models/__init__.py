"""Teacher and student builders: ranking (CTR / rating) and retrieval."""

from tfkd.models.feature_embedding import FeatureEmbedding
from tfkd.models.masked_mean_pooling import MaskedMeanPooling
from tfkd.models.presets import student
from tfkd.models.presets import teacher
from tfkd.models.ranking_model import ranking_model
from tfkd.models.safe_ids import SafeIds
from tfkd.models.two_tower import TwoTowerModel
from tfkd.models.two_tower import two_tower

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
