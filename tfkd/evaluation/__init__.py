"""Quality and size metrics, the comparison table and plots.

- `ranking_metrics`: AUC, log loss, RMSE on arrays.
- `retrieval_metrics`: HR@K and NDCG@K, sampled negatives, two-tower
  evaluation.
- `model_evaluation`: a model's metrics on a dataset, its size.
- `reports`: the comparison table and the PNG plots.
"""

from tfkd.evaluation.model_evaluation import BYTES_PER_FLOAT32
from tfkd.evaluation.model_evaluation import count_params
from tfkd.evaluation.model_evaluation import evaluate_ctr
from tfkd.evaluation.model_evaluation import evaluate_rating
from tfkd.evaluation.model_evaluation import model_bytes
from tfkd.evaluation.ranking_metrics import LOGLOSS_EPSILON
from tfkd.evaluation.ranking_metrics import auc
from tfkd.evaluation.ranking_metrics import gap_recovery
from tfkd.evaluation.ranking_metrics import logloss
from tfkd.evaluation.ranking_metrics import rmse
from tfkd.evaluation.reports import comparison_table
from tfkd.evaluation.reports import plot_learning_curves
from tfkd.evaluation.reports import plot_quality_vs_size
from tfkd.evaluation.retrieval_metrics import evaluate_retrieval
from tfkd.evaluation.retrieval_metrics import hit_rate_at_k
from tfkd.evaluation.retrieval_metrics import ndcg_at_k
from tfkd.evaluation.retrieval_metrics import positive_ranks
from tfkd.evaluation.retrieval_metrics import sample_negatives

__all__ = [
    "BYTES_PER_FLOAT32",
    "LOGLOSS_EPSILON",
    "auc",
    "comparison_table",
    "count_params",
    "evaluate_ctr",
    "evaluate_rating",
    "evaluate_retrieval",
    "gap_recovery",
    "hit_rate_at_k",
    "logloss",
    "model_bytes",
    "ndcg_at_k",
    "plot_learning_curves",
    "plot_quality_vs_size",
    "positive_ranks",
    "rmse",
    "sample_negatives",
]
