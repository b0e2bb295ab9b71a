"""Public metric API: pooled UF1/UAR/accuracy and prediction logs (see :mod:`micronbert.train.metrics`)."""
from __future__ import annotations

from micronbert.train.metrics import (
    FoldPredictions,
    confusion_matrix,
    per_dataset_metrics,
    pooled_metrics,
    predictions_table,
    read_megc_log,
    write_megc_log,
    write_predictions_csv,
    write_predictions_json,
)

__all__ = [
    "FoldPredictions",
    "confusion_matrix",
    "per_dataset_metrics",
    "pooled_metrics",
    "predictions_table",
    "read_megc_log",
    "write_megc_log",
    "write_predictions_csv",
    "write_predictions_json",
]
