"""The public API, pinned: changing it must be a deliberate edit here.

Each public class also records the dotted name it is exported under
(`tfkd.api_export.tfkd_export`); that name must lead back to the class, so
a `.keras` file and the docs name the same thing.
"""

import importlib

import pytest

import tfkd

PUBLIC = {
    "tfkd": [
        "Distiller", "FeatureDistillation", "RetrievalDistiller",
        "callbacks", "datasets",
        "evaluation", "export",
        "losses", "models", "teachers", "__version__",
    ],
    "tfkd.callbacks": [
        "AlphaScheduler", "BackupAndRestore", "RaiseOnNaN", "STATE_FILE",
        "TemperatureScheduler",
    ],
    "tfkd.datasets": [
        "Feature", "FeatureSpec", "ITEM_FEATURES", "MovieLensData",
        "StreamedData", "USER_FEATURES", "features_from_frame", "from_files",
        "from_frame", "frame_to_dataset", "load_movielens_100k_frames",
        "load_movielens_1m_frames", "movielens_1m",
        "movielens_100k", "stream_files", "synthetic_movielens", "transfer_set",
        "with_transfer_set",
    ],
    "tfkd.evaluation": [
        "BYTES_PER_FLOAT32", "LOGLOSS_EPSILON", "auc", "comparison_table",
        "count_params", "evaluate_ctr", "evaluate_rating",
        "evaluate_retrieval", "gap_recovery", "hit_rate_at_k", "logloss",
        "model_bytes",
        "ndcg_at_k", "plot_learning_curves", "plot_quality_vs_size",
        "positive_ranks", "rmse", "sample_negatives",
    ],
    "tfkd.export": [
        "CompressionReport", "ExportReport", "LiteRTRunner",
        "MetricDropError", "RetrievalExportReport", "RetrievalMismatchError",
        "constant_bytes", "prune_finetune", "quantization_aware_finetune",
        "sidecar_path", "strip_tensor_names", "to_tf_keras", "to_tflite",
        "to_tflite_retrieval",
    ],
    "tfkd.losses": [
        "BinaryKLDivergence", "CategoricalKLDivergence",
        "ListwiseSoftmaxCrossEntropy", "LogitDistillationLoss",
        "PADDING_SCORE",
    ],
    "tfkd.models": [
        "FeatureEmbedding", "TwoTowerModel",
        "ranking_model", "student", "teacher", "two_tower",
    ],
    "tfkd.teachers": [
        "CachedLogits", "DEFAULT_LOGITS_KEY", "Ensemble", "cache_logits",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_pinned(module):
    exported = importlib.import_module(module).__all__
    assert sorted(exported) == sorted(PUBLIC[module])


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_resolves(module):
    loaded = importlib.import_module(module)
    for name in PUBLIC[module]:
        assert getattr(loaded, name) is not None, f"{module}.{name}"


def _exported_classes():
    for module in sorted(PUBLIC):
        loaded = importlib.import_module(module)
        for name in PUBLIC[module]:
            value = getattr(loaded, name)
            if isinstance(value, type) and hasattr(value, "_tfkd_api_name"):
                yield value


def test_recorded_api_names_lead_back_to_the_class():
    classes = list(_exported_classes())
    assert tfkd.Distiller in classes
    for cls in classes:
        module, _, name = cls._tfkd_api_name.rpartition(".")
        assert getattr(importlib.import_module(module), name) is cls
