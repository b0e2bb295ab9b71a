"""What an evaluation writes into its folder.

``run.json`` (what is evaluated), ``folds/NNN.json`` (one per fold, written as it finishes),
``predictions_megc.txt`` / ``.csv`` / ``.json``, ``metrics.json``, ``results.md`` (results table, per class,
the method: recipe, inputs, flow method, starting weights, synthetic pre-training; skipped samples/folds,
warnings), ``confusion_matrix.png`` and, for the methods trained in epochs, ``training_loss.png`` (each fold's
training loss per epoch and their mean; the values are in the fold files).

With ``--select-on-test`` the metrics of the best epoch per fold, chosen on its own test samples, go to a separate
key of ``metrics.json`` (``selected_on_test``), a separate, loudly labelled table of ``results.md`` beside the
honest numbers, and ``selected_on_test_predictions.csv``; the honest files never hold them.
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
    selected_on_test: dict[str, Any] | None = None
    synthetic: dict[str, Any] | None = None


def write_predictions(out: Path, folds: Sequence[FoldPredictions], metrics: dict[str, Any] | None = None) -> None:
    """The predictions so far as a MEGC log, CSV and JSON (with ``metrics`` once they are known)."""
    write_megc_log(folds, out / "predictions_megc.txt")
    write_predictions_csv(folds, out / "predictions.csv")
    write_predictions_json(folds, out / "predictions.json", metrics)


def write_report(out: Path, result: EvaluationResult, method: str, protocol: str, class_names: Sequence[str],
                 fold_losses: list[list[float]]) -> None:
    """``metrics.json``, ``results.md``, ``confusion_matrix.png`` and ``training_loss.png``."""
    summary = {
        "method": method, "protocol": protocol, "classes": list(class_names), "pooled": result.metrics,
        "per_dataset": result.per_dataset, "skipped_samples": result.skipped_samples,
        "skipped_folds": result.skipped_folds, "warnings": result.warnings, "timings": result.timings,
        "details": result.details, "pretrain_on_synthetic": result.synthetic}
    if result.selected_on_test is not None:
        summary["selected_on_test"] = result.selected_on_test
    write_json_atomically(out / "metrics.json", summary)
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
    lines += _selection_lines(result)
    lines += ["", f"Folds: {result.folds_done} ({result.folds_resumed} resumed from an earlier run)."]
    lines += _method_lines(result)
    for title, items in (("Skipped samples", result.skipped_samples), ("Skipped folds", result.skipped_folds)):
        lines += ["", f"## {title}: {len(items)}"] + [f"- {reason}" for _, reason in items]
    lines += ["", f"## Warnings: {len(result.warnings)}"] + [f"- {note}" for note in result.warnings]
    return "\n".join(lines) + "\n"


def _selection_lines(result: EvaluationResult) -> list[str]:
    """The separate, loudly labelled table of ``--select-on-test`` (nothing without it)."""
    chosen = result.selected_on_test
    if chosen is None:
        return []
    lines = ["", "## ⚠ SELECTED ON THE TEST SUBJECTS (--select-on-test): NOT A RESULT ⚠", "",
             f"**{chosen['warning']}**"]
    if not chosen["available"]:
        return lines + ["", f"Not available for this method: {chosen['reason']}."]
    lines += ["", f"Chosen: {chosen['criterion']}.", "",
              "| data | samples | honest UF1 (last epoch) | honest UAR (last epoch) | ⚠ UF1 selected on test | "
              "⚠ UAR selected on test |", "|---|---|---|---|---|---|"]
    for name, honest in result.per_dataset.items():
        selected = chosen["per_dataset"].get(name, {})
        lines.append(f"| {name} | {honest['num_samples']} | {honest['uf1']:.4f} | {honest['uar']:.4f} | "
                     f"{_number(selected.get('uf1'))} | {_number(selected.get('uar'))} |")
    epochs = ", ".join(f"{item['fold']}: {item['epoch']}/{item['epochs']}" for item in chosen["epochs"])
    return lines + ["", f"Epoch chosen per fold: {epochs}."]


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


def _method_lines(result: EvaluationResult) -> list[str]:
    """What ran: the recipe, inputs, flow method, starting weights and synthetic pre-training."""
    details, lines = result.details, []
    if "recipe" in details:
        fields = ", ".join(f"{key} {value}" for key, value in details["recipe_fields"].items() if key != "source")
        lines += [f"- recipe: **{details['recipe']}** ({fields}); source: {details['recipe_fields']['source']}"]
    if "training" in details:
        lines += [f"- training: {details['training']}"]
    if "inputs" in details:
        lines += [f"- inputs: {'; '.join(details['inputs'])} (input layer cache {details['input_cache']})"]
    if details.get("flow_method"):
        lines += [f"- optical flow: {details['flow_method']}"]
    if "started_from" in details:
        lines += [f"- started from: {details['started_from']}"]
    if details.get("parameters") is not None:
        lines += [f"- parameters: {details['parameters']:,} at these inputs ({details['published_parameters']:,} "
                  f"published at the card's inputs); architecture: {details['architecture']}"]
    if result.synthetic is not None:
        facts = result.synthetic
        lines += [f"- pre-trained on {facts['samples']} synthetic AU micro-expressions before each fold "
                  f"({facts['classes']}; emotion → class {facts['mapping']}; seed {facts['seed']}; "
                  f"{facts['folder']})"]
    return ["", "## Method", ""] + lines if lines else []
