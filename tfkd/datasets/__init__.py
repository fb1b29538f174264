"""Data for tfkd: MovieLens-100K, your own files, a synthetic twin, tf.data."""

from tfkd.datasets.feature_spec import Feature
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.movielens_files import load_movielens_100k_frames
from tfkd.datasets.movielens import movielens_100k
from tfkd.datasets.movielens_data import MovieLensData
from tfkd.datasets.pipelines import features_from_frame
from tfkd.datasets.pipelines import frame_to_dataset
from tfkd.datasets.schema import ITEM_FEATURES
from tfkd.datasets.schema import USER_FEATURES
from tfkd.datasets.synthetic import synthetic_movielens
from tfkd.datasets.tabular import from_files

__all__ = [
    "Feature",
    "FeatureSpec",
    "ITEM_FEATURES",
    "MovieLensData",
    "USER_FEATURES",
    "features_from_frame",
    "from_files",
    "frame_to_dataset",
    "load_movielens_100k_frames",
    "movielens_100k",
    "synthetic_movielens",
]
