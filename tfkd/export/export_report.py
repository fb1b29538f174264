"""What `tfkd.export.to_tflite` measured and wrote."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """The result of one `tfkd.export.to_tflite` call.

    Args:
        path: str. The `.tflite` file written.
        bytes: int. Its size.
        gzip_bytes: int. Its gzip-compressed size, roughly what it adds
            to an app download (pruning's zeros only show here).
        quantization: str. `"none"`, `"dynamic"`, `"float16"` or `"int8"`.
        max_abs_diff: float. Largest |LiteRT output - Keras output| over
            the validation data (or the id-0 smoke batch without it).
        metric: str or None. `"auc"`, `"rmse"`, or `None` when no metric
            was measured.
        metric_before: float or None. The Keras model's metric.
        metric_after: float or None. The LiteRT model's metric.
        latency_us_p50: float. Median single-request (batch 1) LiteRT
            call through the signature runner, which resizes and
            re-allocates the tensors on every call (what Python code that
            calls `LiteRTRunner` pays).
        invoke_us_p50: float or None. Median single request the way an
            app runs it: tensors sized once, then set and `invoke` only
            (`LiteRTRunner.fixed_shape`). Both in microseconds, one
            thread, on this machine.
        lookup_invoke_us_p50: float or None. The same request from the
            app's raw values: the vocabulary lookups (`export.raw_ids`),
            then the invoke. None when no input has a vocabulary.
        sidecar_path: str. The JSON sidecar written beside the model.
        output_kind: str. `"logit"`, `"probability"` or `"rating"`: what
            the output is, as recorded in the sidecar.
        unknown_ids: dict or None. How out-of-range ids score (`"as id
            0"`), the inputs checked for it on LiteRT, and the inputs whose
            ids the exporter maps, with their vocabulary sizes.
        min_runtime: str or None. The oldest LiteRT the file's ops were
            checked against (`"2.14"`), or `"latest"`.

    Example:

    ```python
    report = tfkd.export.to_tflite(student, "export/student.tflite")
    print(report.to_dict())
    ```
    """

    path: str
    bytes: int
    gzip_bytes: int
    quantization: str
    max_abs_diff: float
    metric: str | None
    metric_before: float | None
    metric_after: float | None
    latency_us_p50: float
    sidecar_path: str
    output_kind: str = "logit"
    unknown_ids: dict | None = None
    invoke_us_p50: float | None = None
    min_runtime: str | None = None
    lookup_invoke_us_p50: float | None = None

    def to_dict(self):
        """Returns the report as a JSON-serializable dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CompressionReport(ExportReport):
    """The result of `quantization_aware_finetune` or `prune_finetune`.

    An `ExportReport` (the file went through the same checks as
    `to_tflite`'s), plus what the fine-tune did. `metric_before` is the
    fine-tuned model's metric, `metric_after` the int8 file's.

    Args:
        compression: str. `"qat"` or `"pruning"`.
        sparsity: float or None. Share of zeros in the pruned kernels
            (pruning only).
        model: `tf_keras.Model`. The fine-tuned model (QAT-wrapped, or
            pruned and stripped). Not part of `to_dict()`.

    Example:

    ```python
    report = quantization_aware_finetune(student, teacher, data.train,
                                         "export/qat.tflite")
    print(report.to_dict())
    ```
    """

    compression: str = "qat"
    sparsity: float | None = None
    model: object = dataclasses.field(default=None, repr=False,
                                      compare=False)

    def to_dict(self):
        """Returns the report, without the model, as a JSON-ready dict."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "model"
        }
