"""The error raised when quantization costs more quality than allowed."""


class MetricDropError(ValueError):
    """The exported model scores worse than the Keras model by too much.

    Raised by `tfkd.export.to_tflite` before anything is written, so the
    file already at `path` (if any) is left as it was.

    Args:
        metric: str. `"auc"` or `"rmse"`.
        before: float. The Keras model's metric on the validation data.
        after: float. The LiteRT model's metric on the same data.
        drop: float. How much worse `after` is (AUC lower, RMSE higher).
        max_metric_drop: float. The allowed drop.
        quantization: str. The quantization mode that was tried.
    """

    def __init__(
        self, metric, before, after, drop, max_metric_drop, quantization
    ):
        self.metric = metric
        self.before = before
        self.after = after
        self.drop = drop
        self.max_metric_drop = max_metric_drop
        self.quantization = quantization
        super().__init__(
            f"The exported model's {metric} dropped by {drop:.6f}, more than "
            f"max_metric_drop={max_metric_drop}: before={before:.6f}, "
            f"after={after:.6f} (quantization={quantization!r}). Nothing "
            "was written. To export anyway pass `allow_metric_drop=True`; "
            "to lose less, use `quantization='int8'` with more calibration "
            "data (`representative_data`, `num_calibration_batches`) or "
            "`quantization='dynamic'`."
        )
