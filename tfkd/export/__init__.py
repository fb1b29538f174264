"""LiteRT export: conversion, quantization, parity check and sidecar."""

from tfkd.export.converter_utils import constant_bytes
from tfkd.export.converter_utils import strip_tensor_names
from tfkd.export.export_report import ExportReport
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.metric_drop_error import MetricDropError
from tfkd.export.retrieval_export import RetrievalExportReport
from tfkd.export.retrieval_export import RetrievalMismatchError
from tfkd.export.retrieval_export import to_tflite_retrieval
from tfkd.export.sidecar import sidecar_path
from tfkd.export.tflite_export import to_tflite

# The QAT / pruning bridge imports tf_keras and TFMOT (seconds, and a
# second Keras); it loads on first use, not with `import tfkd`.
_LAZY = {
    "CompressionReport": "tfkd.export.export_report",
    "prune_finetune": "tfkd.export.pruning",
    "quantization_aware_finetune": "tfkd.export.qat",
    "to_tf_keras": "tfkd.export.tf_keras_bridge",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfkd.export' has no attribute {name!r}")


__all__ = [
    "CompressionReport",
    "ExportReport",
    "LiteRTRunner",
    "MetricDropError",
    "RetrievalExportReport",
    "RetrievalMismatchError",
    "constant_bytes",
    "prune_finetune",
    "quantization_aware_finetune",
    "sidecar_path",
    "strip_tensor_names",
    "to_tf_keras",
    "to_tflite",
    "to_tflite_retrieval",
]
