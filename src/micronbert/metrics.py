"""Recognition metrics pooled over folds (MEGC convention) and prediction logs.

All metrics here are computed on predictions **pooled over every fold** of a protocol (DATASETS.md §14.2):
collect the predictions of all LOSO folds first, then call :func:`pooled_metrics` once. Averaging per-fold
scores gives a different, unstable number and is deliberately not offered.

Prediction records (:class:`FoldPredictions`) can be written as a MEGC result log (DATASETS.md §12: per fold a
header line ``database subject``, then one line ``clip gt pred`` per sample), as CSV and as JSON.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from micronbert.io import json_safe, write_text_atomically

PREDICTION_COLUMNS = ("dataset", "subject", "clip", "gt", "pred")


def _as_label_vector(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not (np.issubdtype(array.dtype, np.floating) and np.all(array == np.round(array))):
            raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    return array.astype(np.int64)


def _validated_labels(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    true = _as_label_vector(y_true, "y_true")
    pred = _as_label_vector(y_pred, "y_pred")
    if true.size != pred.size:
        raise ValueError(f"y_true and y_pred differ in length: {true.size} vs {pred.size}")
    if true.size == 0:
        raise ValueError("y_true and y_pred are empty: nothing to score")
    for name, labels in (("y_true", true), ("y_pred", pred)):
        outside = labels[(labels < 0) | (labels >= num_classes)]
        if outside.size:
            raise ValueError(
                f"{name} holds label {int(outside[0])} outside [0, {num_classes}) "
                f"({outside.size} value(s) out of range)"
            )
    return true, pred


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Confusion matrix of shape (C, C): row = true class, column = predicted class, int64 counts.

    Every class 0..C-1 gets a row and a column, whether or not it occurs.

    Raises:
        ValueError: lengths differ, inputs are empty, or a label lies outside [0, num_classes).
    """
    true, pred = _validated_labels(y_true, y_pred, num_classes)
    flat = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def balanced_class_weights(labels: Any, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights n / (classes present · n_c), 0 for classes absent from ``labels``: a loss
    weighted by them counts every present class equally, as UAR and UF1 do. float64 (num_classes,)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray, empty_value: float) -> np.ndarray:
    ratio = np.full(numerator.shape, empty_value, dtype=np.float64)
    np.divide(numerator, denominator, out=ratio, where=denominator > 0)
    return ratio


def pooled_metrics(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, Any]:
    """UF1, UAR and accuracy of predictions pooled over all folds (MEGC, DATASETS.md §14.2).

    With TP_c, FP_c, FN_c counted over the pooled vectors and n_c = TP_c + FN_c:

    - ``f1_per_class[c]`` = 2·TP_c / (2·TP_c + FP_c + FN_c), and **0 when that denominator is 0** (class
      never true and never predicted).
    - ``uf1`` = mean of ``f1_per_class`` over **all C classes**, absent ones included. Equals
      ``sklearn.metrics.f1_score(y_true, y_pred, average="macro", labels=range(C), zero_division=0)``.
    - ``recall_per_class[c]`` = TP_c / n_c, and **NaN when n_c = 0** (class absent from ``y_true``).
    - ``uar`` = mean of ``recall_per_class`` over the classes **present in y_true** (absent classes are
      left out, not counted as 0). Equals ``sklearn.metrics.balanced_accuracy_score(y_true, y_pred)``.
    - ``precision_per_class[c]`` = TP_c / (TP_c + FP_c), and 0 when the class is never predicted.
    - ``accuracy`` = Σ_c TP_c / N.
    - ``support`` = n_c per class; ``num_samples`` = N; ``confusion_matrix`` as nested lists (row = true).

    Per-class values are plain Python lists indexed by class id.

    Raises:
        ValueError: lengths differ, inputs are empty, num_classes < 1, or a label lies outside [0, num_classes).
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    true_positives = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    false_positives = predicted - true_positives
    false_negatives = support - true_positives
    f1 = _safe_ratio(2 * true_positives, 2 * true_positives + false_positives + false_negatives, 0.0)
    recall = _safe_ratio(true_positives, support, math.nan)
    precision = _safe_ratio(true_positives, predicted, 0.0)
    return {
        "uf1": float(f1.mean()),
        "uar": float(recall[support > 0].mean()),
        "accuracy": float(true_positives.sum() / matrix.sum()),
        "f1_per_class": f1.tolist(),
        "recall_per_class": recall.tolist(),
        "precision_per_class": precision.tolist(),
        "support": support.tolist(),
        "num_samples": int(matrix.sum()),
        "confusion_matrix": matrix.tolist(),
    }


def per_dataset_metrics(predictions: pd.DataFrame, num_classes: int) -> dict[str, dict[str, Any]]:
    """Pooled metrics for the whole table (key ``"all"``) and for each value of its ``dataset`` column.

    ``predictions`` needs the columns ``dataset``, ``gt`` and ``pred`` (see :func:`predictions_table`). Each
    per-dataset entry filters the pooled vector to that dataset's rows, then applies :func:`pooled_metrics`
    with all ``num_classes`` classes (MEGC composite convention). Datasets appear in sorted order after ``"all"``.

    Raises:
        ValueError: a required column is missing, a dataset is literally named ``"all"``, or the labels are invalid.
    """
    missing = [column for column in ("dataset", "gt", "pred") if column not in predictions.columns]
    if missing:
        raise ValueError(f"predictions table lacks column(s) {missing}; it has {list(predictions.columns)}")
    datasets = sorted(str(name) for name in predictions["dataset"].unique())
    if "all" in datasets:
        raise ValueError("a dataset named 'all' clashes with the key of the overall metrics")
    results = {"all": pooled_metrics(predictions["gt"].to_numpy(), predictions["pred"].to_numpy(), num_classes)}
    for name in datasets:
        rows = predictions[predictions["dataset"].astype(str) == name]
        results[name] = pooled_metrics(rows["gt"].to_numpy(), rows["pred"].to_numpy(), num_classes)
    return results


def _check_token(value: str, what: str) -> None:
    if not isinstance(value, str) or not value or any(char.isspace() for char in value):
        raise ValueError(f"{what} must be a non-empty string without whitespace, got {value!r}")


@dataclass(frozen=True)
class FoldPredictions:
    """Test predictions of one fold (one held-out subject of one database)."""

    database: str
    subject: str
    clips: tuple[str, ...]
    y_true: tuple[int, ...]
    y_pred: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_token(self.database, "database")
        _check_token(self.subject, "subject")
        object.__setattr__(self, "clips", tuple(self.clips))
        object.__setattr__(self, "y_true", tuple(int(label) for label in self.y_true))
        object.__setattr__(self, "y_pred", tuple(int(label) for label in self.y_pred))
        where = f"fold {self.database} {self.subject}"
        if not self.clips:
            raise ValueError(f"{where} has no samples")
        if not len(self.clips) == len(self.y_true) == len(self.y_pred):
            raise ValueError(
                f"{where}: clips, y_true and y_pred differ in length "
                f"({len(self.clips)}, {len(self.y_true)}, {len(self.y_pred)})"
            )
        for clip in self.clips:
            _check_token(clip, f"clip name in {where}")
        if len(set(self.clips)) != len(self.clips):
            raise ValueError(f"{where} lists a clip more than once")


def predictions_table(folds: Iterable[FoldPredictions]) -> pd.DataFrame:
    """One row per sample with the columns ``dataset, subject, clip, gt, pred`` (pooled over the folds)."""
    rows = [
        (fold.database, fold.subject, clip, gt, pred)
        for fold in folds
        for clip, gt, pred in zip(fold.clips, fold.y_true, fold.y_pred)
    ]
    table = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    return table.astype({"dataset": str, "subject": str, "clip": str, "gt": np.int64, "pred": np.int64})


def _check_unique_folds(folds: Sequence[FoldPredictions]) -> None:
    seen: set[tuple[str, str]] = set()
    for fold in folds:
        key = (fold.database, fold.subject)
        if key in seen:
            raise ValueError(f"fold {fold.database} {fold.subject} appears more than once")
        seen.add(key)


def write_megc_log(folds: Sequence[FoldPredictions], path: str | os.PathLike[str]) -> None:
    """Write predictions in the MEGC result-log format, atomically.

    Per fold a header line ``database subject``, then one line ``clip gt pred`` per sample.
    """
    folds = list(folds)
    _check_unique_folds(folds)
    lines: list[str] = []
    for fold in folds:
        lines.append(f"{fold.database} {fold.subject}")
        lines.extend(f"{clip} {gt} {pred}" for clip, gt, pred in zip(fold.clips, fold.y_true, fold.y_pred))
    write_text_atomically(Path(path), "\n".join(lines) + "\n")


def _parse_label(token: str, where: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise ValueError(f"{where}: label {token!r} is not an integer") from None


def read_megc_log(path: str | os.PathLike[str]) -> list[FoldPredictions]:
    """Read a MEGC result log written by :func:`write_megc_log` (or by MEGC tooling).

    Blank lines are ignored. Lines with two fields start a fold, lines with three fields are samples.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a malformed line, a sample before the first header, a fold without samples, or a
            repeated fold; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MEGC log not found: {path}")
    headers: list[tuple[str, str, int]] = []
    samples: list[list[tuple[str, int, int]]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        where = f"{path}:{number}"
        if not fields:
            continue
        if len(fields) == 2:
            headers.append((fields[0], fields[1], number))
            samples.append([])
        elif len(fields) == 3:
            if not headers:
                raise ValueError(f"{where}: sample line before the first 'database subject' header")
            samples[-1].append((fields[0], _parse_label(fields[1], where), _parse_label(fields[2], where)))
        else:
            raise ValueError(f"{where}: expected 'database subject' or 'clip gt pred', got {line!r}")
    folds = []
    for (database, subject, number), rows in zip(headers, samples):
        if not rows:
            raise ValueError(f"{path}:{number}: fold '{database} {subject}' has no samples")
        clips, y_true, y_pred = zip(*rows)
        try:
            folds.append(FoldPredictions(database, subject, clips, y_true, y_pred))
        except ValueError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
    try:
        _check_unique_folds(folds)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return folds


def write_predictions_csv(folds: Sequence[FoldPredictions], path: str | os.PathLike[str]) -> None:
    """Write the pooled predictions as CSV (columns ``dataset, subject, clip, gt, pred``), atomically."""
    folds = list(folds)
    _check_unique_folds(folds)
    write_text_atomically(Path(path), predictions_table(folds).to_csv(index=False))


def write_predictions_json(
    folds: Sequence[FoldPredictions],
    path: str | os.PathLike[str],
    metrics: dict[str, Any] | None = None,
) -> None:
    """Write the per-fold predictions (and optionally metrics) as JSON, atomically.

    Layout: ``{"folds": [{"database", "subject", "clips", "y_true", "y_pred"}, ...], "metrics": {...}}``.
    NaN values in ``metrics`` (recall of an absent class) are written as ``null``.
    """
    folds = list(folds)
    _check_unique_folds(folds)
    document: dict[str, Any] = {
        "folds": [
            {
                "database": fold.database,
                "subject": fold.subject,
                "clips": list(fold.clips),
                "y_true": list(fold.y_true),
                "y_pred": list(fold.y_pred),
            }
            for fold in folds
        ]
    }
    if metrics is not None:
        document["metrics"] = json_safe(metrics)
    write_text_atomically(Path(path), json.dumps(document, indent=2, allow_nan=False) + "\n")
