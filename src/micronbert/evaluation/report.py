"""What an evaluation writes into its folder.

``run.json`` (what is evaluated), ``folds/NNN.json`` (one per fold, written as it finishes),
``predictions_megc.txt`` / ``.csv`` / ``.json``, ``metrics.json``, ``results.md`` (results table, per class,
skipped samples/folds, warnings), ``confusion_matrix.png`` and, for the methods trained in epochs,
``training_loss.png`` (each fold's training loss per epoch and their mean; the values are in the fold files).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from micronbert.io import write_json_atomically, write_text_atomically
from micronbert.metrics import FoldPredictions, write_megc_log, write_predictions_csv, write_predictions_json
from micronbert.viz import confusion_figure, save_figure_atomically, training_loss_figure


@dataclass
class EvaluationResult:
    """What :func:`evaluate` produced: pooled metrics, per-dataset metrics, what was skipped, timings."""

    metrics: dict[str, Any]
    per_dataset: dict[str, dict[str, Any]]
    folds_done: int
    folds_resumed: int
    skipped_samples: list[tuple[str, str]] = field(default_factory=list)
    skipped_folds: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None


def write_predictions(out: Path, folds: Sequence[FoldPredictions], metrics: dict[str, Any] | None = None) -> None:
    """The predictions so far as a MEGC log, CSV and JSON (with ``metrics`` once they are known)."""
    write_megc_log(folds, out / "predictions_megc.txt")
    write_predictions_csv(folds, out / "predictions.csv")
    write_predictions_json(folds, out / "predictions.json", metrics)


def write_report(out: Path, result: EvaluationResult, method: str, protocol: str, class_names: Sequence[str],
                 fold_losses: list[list[float]]) -> None:
    """``metrics.json``, ``results.md``, ``confusion_matrix.png`` and ``training_loss.png``."""
    write_json_atomically(out / "metrics.json", {
        "method": method, "protocol": protocol, "classes": list(class_names), "pooled": result.metrics,
        "per_dataset": result.per_dataset, "skipped_samples": result.skipped_samples,
        "skipped_folds": result.skipped_folds, "warnings": result.warnings, "timings": result.timings,
        "details": result.details})
    save_figure_atomically(confusion_figure(np.asarray(result.metrics["confusion_matrix"]), class_names,
                                            f"{method} · {protocol}"), out / "confusion_matrix.png")
    write_text_atomically(out / "results.md", results_markdown(result, method, protocol, class_names))
    if fold_losses:
        save_figure_atomically(training_loss_figure(fold_losses, f"{method} · {protocol}: training loss per fold"),
                               out / "training_loss.png")


def results_markdown(result: EvaluationResult, method: str, protocol: str, class_names: Sequence[str]) -> str:
    """The human-readable report: results table, per-class table, skipped samples/folds, warnings."""
    lines = [f"# {method} · {protocol}", "", "| data | samples | UF1 | UAR | accuracy |", "|---|---|---|---|---|"]
    for name, metrics in result.per_dataset.items():
        lines.append(f"| {name} | {metrics['num_samples']} | {metrics['uf1']:.4f} | {metrics['uar']:.4f} | "
                     f"{metrics['accuracy']:.4f} |")
    lines += ["", "| class | support | F1 | recall | precision |", "|---|---|---|---|---|"]
    m = result.metrics
    for index, name in enumerate(class_names):
        recall = m["recall_per_class"][index]
        recall_text = "–" if recall != recall else f"{recall:.4f}"
        lines.append(f"| {name} | {m['support'][index]} | {m['f1_per_class'][index]:.4f} | {recall_text} | "
                     f"{m['precision_per_class'][index]:.4f} |")
    lines += ["", f"Folds: {result.folds_done} ({result.folds_resumed} resumed from an earlier run)."]
    for title, items in (("Skipped samples", result.skipped_samples), ("Skipped folds", result.skipped_folds)):
        lines += ["", f"## {title}: {len(items)}"] + [f"- {reason}" for _, reason in items]
    lines += ["", f"## Warnings: {len(result.warnings)}"] + [f"- {note}" for note in result.warnings]
    return "\n".join(lines) + "\n"
