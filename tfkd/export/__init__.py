"""LiteRT export: conversion, quantization, parity check and sidecar."""

from tfkd.export.export_report import ExportReport
from tfkd.export.litert_runner import LiteRTRunner
from tfkd.export.metric_drop_error import MetricDropError
from tfkd.export.sidecar import sidecar_path
from tfkd.export.tflite_export import to_tflite

__all__ = [
    "ExportReport",
    "LiteRTRunner",
    "MetricDropError",
    "sidecar_path",
    "to_tflite",
]
