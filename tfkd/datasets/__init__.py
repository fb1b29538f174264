"""Data for tfkd: MovieLens-100K and -1M, your own files, a synthetic twin,
tf.data."""

from tfkd._internal import tensorflow_optional
from tfkd.datasets.feature_spec import Feature
from tfkd.datasets.feature_spec import FeatureSpec
from tfkd.datasets.schema import ITEM_FEATURES
from tfkd.datasets.schema import USER_FEATURES

# The loaders return tf.data pipelines. Without TensorFlow (Keras on JAX)
# they stay unloaded and the schema above still works; using one then
# raises the missing-TensorFlow error.
_NEED_TENSORFLOW = {
    "MovieLensData": "tfkd.datasets.movielens_data",
    "features_from_frame": "tfkd.datasets.pipelines",
    "frame_to_dataset": "tfkd.datasets.pipelines",
    "from_files": "tfkd.datasets.tabular",
    "from_frame": "tfkd.datasets.tabular",
    "load_movielens_100k_frames": "tfkd.datasets.movielens_files",
    "load_movielens_1m_frames": "tfkd.datasets.movielens_1m_files",
    "movielens_100k": "tfkd.datasets.movielens",
    "movielens_1m": "tfkd.datasets.movielens",
    "StreamedData": "tfkd.datasets.streaming",
    "stream_files": "tfkd.datasets.streaming",
    "synthetic_movielens": "tfkd.datasets.synthetic",
    "transfer_set": "tfkd.datasets.transfer",
    "with_transfer_set": "tfkd.datasets.transfer",
}
tensorflow_optional.bind(globals(), _NEED_TENSORFLOW)
__getattr__ = tensorflow_optional.missing_attribute(
    __name__, _NEED_TENSORFLOW
)

__all__ = [
    "Feature",
    "FeatureSpec",
    "ITEM_FEATURES",
    "MovieLensData",
    "USER_FEATURES",
    "features_from_frame",
    "from_files",
    "from_frame",
    "frame_to_dataset",
    "StreamedData",
    "load_movielens_100k_frames",
    "load_movielens_1m_frames",
    "movielens_100k",
    "movielens_1m",
    "stream_files",
    "synthetic_movielens",
    "transfer_set",
    "with_transfer_set",
]
