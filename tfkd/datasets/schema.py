"""The MovieLens feature schema shared by the real and synthetic loaders."""

from tfkd.datasets.feature_spec import Feature
from tfkd.datasets.feature_spec import FeatureSpec

TASKS = ("ctr", "rating", "retrieval")
LABEL = "label"
LABEL_KIND_BY_TASK = {
    "ctr": "binary",
    "rating": "rating",
    "retrieval": "implicit",
}

USER_FEATURES = ("user_id", "age_bucket", "gender", "occupation")
ITEM_FEATURES = ("item_id", "genres", "release_year_bucket")
FEATURE_NAMES = (
    "user_id",
    "item_id",
    "age_bucket",
    "gender",
    "occupation",
    "release_year_bucket",
    "genres",
)
# The most genres any MovieLens-100K movie has.
GENRES_LENGTH = 6
# MovieLens-1M age groups: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+.
AGE_BOUNDARIES = (18, 25, 35, 45, 50, 56)
AGE_VOCABULARY_SIZE = len(AGE_BOUNDARIES) + 2


def validate_task(task):
    """Raises `ValueError` unless `task` is one of `TASKS`."""
    if task not in TASKS:
        raise ValueError(
            f"`task` must be one of {TASKS}. Received: task={task!r}"
        )


def make_spec(task, vocabulary_sizes):
    """Builds the MovieLens `FeatureSpec` for `task`.

    Args:
        task: str. One of `TASKS`.
        vocabulary_sizes: dict. Feature name to vocabulary size (row 0
            included), for every name in `FEATURE_NAMES`.

    Returns:
        A `FeatureSpec` whose features follow `FEATURE_NAMES`.
    """
    validate_task(task)
    features = tuple(
        Feature(
            name,
            int(vocabulary_sizes[name]),
            GENRES_LENGTH if name == "genres" else 1,
        )
        for name in FEATURE_NAMES
    )
    return FeatureSpec(
        features=features,
        task=task,
        label=LABEL,
        label_kind=LABEL_KIND_BY_TASK[task],
    )
