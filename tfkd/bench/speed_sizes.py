"""Model and data sizes of the speed bench: the demo's, and an accelerator's.

`"demo"` is what `make demo` trains: the DCN-v2 teacher and the
`tfkd.models.student` preset (14K parameters; 11K before #13's full-budget
default, when `docs/BENCHMARKS.md`'s CPU tables were measured) on
MovieLens-100K's vocabularies, batch 1024. `"large"` is the scale the
accelerator figures of issue #14 were measured at outside tfkd: synthetic
CTR with 7 features, 8.4M rows, an 18.7M-parameter teacher, a 2.2M student
and batch 65536, where a 2-core CPU runs out of patience and a GPU first
has work to do.
"""

import dataclasses
from typing import Any

SIZES = ("demo", "large")

# ML-100K's vocabulary sizes (row 0 included), so synthetic data has the
# demo's shape without reading the files.
MOVIELENS_100K_VOCABULARY_SIZES = {
    "user_id": 944,
    "item_id": 1683,
    "age_bucket": 8,
    "gender": 3,
    "occupation": 22,
    "release_year_bucket": 9,
    "genres": 20,
}


@dataclasses.dataclass(frozen=True)
class SizePreset:
    """The models, vocabularies and default feed of one bench size.

    Args:
        vocabulary_sizes: dict of feature name to ids (row 0 included) of
            synthetic data.
        teacher: dict or None. `tfkd.models.ranking_model` arguments;
            None for the demo's (`tfkd.models.presets.TEACHER_CONFIG`),
            read when a model is built: this module imports no Keras, so
            the bench can pick Keras' backend after reading its settings.
        student: dict or None. The same for the student.
        batch_size: int. Default batch size.
        rows: int or None. Default synthetic rows per epoch; `None` for
            the training set `repeat` times.
        data: tuple of str. The data sources this size accepts.
    """

    vocabulary_sizes: dict[str, int]
    teacher: dict[str, Any] | None
    student: dict[str, Any] | None
    batch_size: int
    rows: int | None
    data: tuple[str, ...]


PRESETS = {
    "demo": SizePreset(
        vocabulary_sizes=MOVIELENS_100K_VOCABULARY_SIZES,
        teacher=None,
        student=None,
        batch_size=1024,
        rows=None,
        data=("movielens", "synthetic"),
    ),
    # 180K users x 100K items at 64 dims: 18.72M teacher parameters, 2.25M
    # student (0.12), 128 steps of 65536 per epoch.
    "large": SizePreset(
        vocabulary_sizes={**MOVIELENS_100K_VOCABULARY_SIZES,
                          "user_id": 180_000, "item_id": 100_000},
        teacher={"embedding_dim": 64, "hidden": (512, 256, 128),
                 "cross_layers": 2, "dropout": 0.2},
        student={"embedding_dim": 8, "hidden": (64, 32),
                 "cross_layers": 0, "dropout": 0.0},
        batch_size=65_536,
        rows=128 * 65_536,
        data=("synthetic",),
    ),
}


def preset(size: str) -> SizePreset:
    """The `SizePreset` named `size`.

    Args:
        size: str. One of `SIZES`.

    Returns:
        `SizePreset`.

    Raises:
        ValueError: on an unknown size.

    Example:

    ```python
    preset("large").batch_size  # 65536
    ```
    """
    if size not in PRESETS:
        raise ValueError(
            f"`size` must be one of {SIZES}. Received: size={size!r}"
        )
    return PRESETS[size]


def build_model(spec: Any, size: str, role: str, seed: int) -> Any:
    """A fresh teacher or student of `size`, initialised from `seed`.

    Args:
        spec: `tfkd.datasets.FeatureSpec` of the bench's data.
        size: str. One of `SIZES`.
        role: str. `"teacher"` or `"student"`.
        seed: int. Seeds the initialisers.

    Returns:
        `keras.Model` (`tfkd.models.ranking_model`) named `role`.

    Example:

    ```python
    teacher = build_model(spec, "large", "teacher", seed=0)
    ```
    """
    import keras

    from tfkd.models import presets
    from tfkd.models.ranking_model import ranking_model

    keras.utils.set_random_seed(seed)
    config = getattr(preset(size), role)
    if config is None:
        config = {"teacher": presets.TEACHER_CONFIG,
                  "student": presets.STUDENT_CONFIG}[role]
    return ranking_model(spec, output="logit", name=role, **config)
