"""What `to_tflite_retrieval` measured, and how top-K lists are compared."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class RetrievalExportReport:
    """The result of one `to_tflite_retrieval` call.

    Args:
        path: str. The `.tflite` file written.
        bytes: int. Its size.
        quantization: str. `"none"`, `"dynamic"`, `"float16"`,
            `"int16_table"` or `"int8_table"`.
        k: int. Items returned per user.
        num_candidates: int. Items baked into the model.
        num_users_checked: int. Users scored by both Keras and LiteRT.
        recall_at_k: float. Mean over users of |Keras top-K ∩ LiteRT
            top-K| / K, ties at rank K counted as found.
        min_recall: float. The recall that was required.
        max_score_abs_diff: float. Largest |LiteRT - Keras| top-K score,
            rank by rank.
        latency_us_p50: float. Median batch-1 call through the signature
            runner (resizes the tensors every call; one thread).
        invoke_us_p50: float or None. Median batch-1 call as an app makes
            it: tensors sized once, then set and invoke
            (`LiteRTRunner.fixed_shape`).
        sidecar_path: str. The JSON sidecar written beside the model.
        min_runtime: str or None. The oldest LiteRT the file's ops were
            checked against (`"2.14"`), or `"latest"`.

    Example:

    ```python
    report = to_tflite_retrieval(model, data.items, "export/ret.tflite")
    print(report.to_dict())
    ```
    """

    path: str
    bytes: int
    quantization: str
    k: int
    num_candidates: int
    num_users_checked: int
    recall_at_k: float
    min_recall: float
    max_score_abs_diff: float
    latency_us_p50: float
    sidecar_path: str
    invoke_us_p50: float | None = None
    min_runtime: str | None = None

    def to_dict(self):
        """Returns the report as a JSON-serializable dict."""
        return dataclasses.asdict(self)


class RetrievalMismatchError(ValueError):
    """LiteRT's top-K disagrees with the Keras model's; nothing written.

    Args:
        recall: float. The measured recall at K.
        min_recall: float. The required recall.
        quantization: str. The quantization mode tried.
    """

    def __init__(self, recall, min_recall, quantization):
        self.recall = recall
        self.min_recall = min_recall
        self.quantization = quantization
        super().__init__(
            f"Expected the LiteRT top-K to recall >= {min_recall} of the "
            f"Keras top-K. Received: recall_at_k={recall:.4f} "
            f"(quantization={quantization!r}). Nothing was written. Pass a "
            "lower `min_recall` to export anyway, or use less quantization."
        )


def recall_at_k(reference_scores, item_ids, predicted_ids, k, tie_atol=0.0):
    """Mean share of the reference top-K found in the predicted top-K.

    ```
    recall = mean_u |top_k(reference_u) ∩ predicted_u| / k
    ```

    A reference item whose score is within `tie_atol` of the K-th best
    reference score counts as found if any item tied with it was
    predicted: which of tied items makes the cut is arbitrary.

    Args:
        reference_scores: array `(users, candidates)`. The Keras scores.
        item_ids: array `(candidates,)`. The id of each candidate column.
        predicted_ids: array `(users, >= k)`. LiteRT's top ids, best first.
        k: int. Cut-off.
        tie_atol: float. Score tolerance that makes two items a tie.
            Defaults to `0.0`.

    Returns:
        The mean recall as a float in [0, 1].

    Example:

    >>> recall_at_k(np.array([[3.0, 2.0, 1.0]]), np.array([7, 8, 9]),
    ...             np.array([[7, 9]]), k=2)
    0.5
    """
    reference_scores = np.asarray(reference_scores, dtype=np.float64)
    item_ids = np.asarray(item_ids)
    predicted_ids = np.asarray(predicted_ids)[:, :k]
    order = np.argsort(-reference_scores, axis=1, kind="stable")[:, :k]
    recalls = []
    for row, predicted in enumerate(predicted_ids):
        scores = reference_scores[row]
        kth = scores[order[row, -1]]
        predicted = set(predicted.tolist())
        tied = set(item_ids[np.abs(scores - kth) <= tie_atol].tolist())
        found = 0
        for column in order[row]:
            item = item_ids[column]
            if item in predicted:
                found += 1
            elif abs(scores[column] - kth) <= tie_atol and tied & predicted:
                found += 1
        recalls.append(found / k)
    return float(np.mean(recalls))
