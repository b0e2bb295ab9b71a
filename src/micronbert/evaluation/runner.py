"""The resumable evaluation runner (``micronbert evaluate``) and training on all samples (``micronbert
finetune``).

:func:`evaluate` runs a registered method under a protocol. Every fold is checked for subject disjointness,
trains with the configuration's fixed budget and writes its predictions as it finishes (``folds/NNN.json``), so an
interrupted run resumes at the next fold. The report files are described in :mod:`micronbert.evaluation.report`.
"""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from micronbert.data.labelled_pairs import load_labelled_pairs
from micronbert.evaluation.folds import Fold, make_folds
from micronbert.evaluation.methods import get_method
from micronbert.evaluation.report import EvaluationResult, write_predictions, write_report
from micronbert.io import claim_folder, read_json_mapping, write_json_atomically
from micronbert.metrics import FoldPredictions, per_dataset_metrics, pooled_metrics, predictions_table
from micronbert.train.finetune import FinetuneConfig
from micronbert.viz import save_figure_atomically, training_loss_figure


def evaluate(table: pd.DataFrame, method: str, config: FinetuneConfig, out_dir: str | Path,
             class_names: Sequence[str], protocol: str = "loso", test_subjects: Sequence[str] = (),
             skip_bad: bool = False, progress: bool = False,
             log: Callable[[str], None] | None = None) -> EvaluationResult:
    """Run ``method`` under ``protocol`` on ``table``, writing every fold's predictions as it finishes.

    A re-run with the same inputs and ``out_dir`` resumes after the last finished fold. Unusable samples and
    folds raise ``ValueError`` naming them unless ``skip_bad``; then they are left out and reported.
    """
    log = log or (lambda message: None)
    out = Path(out_dir)
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError(f"need at least two classes, got {list(class_names)}")
    started = time.perf_counter()
    runner = get_method(method, config, num_classes)
    pairs = load_labelled_pairs(table, runner.input_size(), skip_bad=skip_bad)
    for _, reason in pairs.skipped:
        log(f"skipped sample {reason}")
    used = table.iloc[pairs.rows].reset_index(drop=True)
    if len(used) == 0:
        raise ValueError("no usable samples to evaluate")
    if pairs.labels.max() >= num_classes:
        raise ValueError(f"label {pairs.labels.max()} outside the {num_classes} classes {list(class_names)}")
    folds = make_folds(used, protocol, test_subjects)
    identity = {"method": method, "protocol": protocol, "config": _result_relevant(config),
                "classes": list(class_names), "table": _table_fingerprint(used), "test_subjects": list(test_subjects)}
    out.mkdir(parents=True, exist_ok=True)
    claim_folder(out / "run.json", identity, "evaluation")
    for warning in runner.warnings():
        log(f"warning: {warning}")
    runner.prepare(pairs)
    prepare_s = time.perf_counter() - started
    clips = _clip_ids(used)
    records: list[dict[str, Any]] = []
    skipped_folds: list[tuple[str, str]] = []
    fold_losses: list[list[float]] = []
    train_s = predict_s = 0.0
    resumed = 0
    for index, fold in enumerate(_progress(folds, progress)):
        fold_file = out / "folds" / f"{index:03d}.json"
        if fold_file.is_file():
            saved = _saved_fold(fold_file, fold.name)
            records.extend(saved["records"])
            if saved.get("skipped"):
                skipped_folds.append((fold.name, saved["skipped"]))
            if saved.get("train_loss"):
                fold_losses.append(saved["train_loss"])
            resumed += 1
            continue
        problem = _fold_problem(fold, pairs.labels)
        if problem:
            if not skip_bad:
                raise ValueError(problem)
            log(f"skipped {problem}")
            skipped_folds.append((fold.name, problem))
            write_json_atomically(fold_file, {"fold": fold.name, "records": [], "skipped": problem})
            continue
        clock = time.perf_counter()
        runner.fit(fold.train)
        train_s += time.perf_counter() - clock
        clock = time.perf_counter()
        probabilities = runner.predict_proba(fold.test)
        predict_s += time.perf_counter() - clock
        fold_records = _fold_records(used, clips, fold.test, probabilities.argmax(axis=1))
        write_json_atomically(fold_file, {"fold": fold.name, "records": fold_records, "skipped": None,
                                          "probabilities": probabilities.round(6).tolist(),
                                          "train_loss": runner.train_loss})
        if runner.train_loss:
            fold_losses.append(runner.train_loss)
        records.extend(fold_records)
        write_predictions(out, _as_folds(records))
        log(f"fold {index + 1}/{len(folds)} {fold.name}: {len(fold.test)} test samples")
    if not records:
        raise ValueError("every fold was skipped: nothing to score")
    predictions = predictions_table(_as_folds(records))
    metrics = pooled_metrics(predictions["gt"].to_numpy(), predictions["pred"].to_numpy(), num_classes)
    per_dataset = per_dataset_metrics(predictions, num_classes)
    result = EvaluationResult(metrics, per_dataset, len(folds), resumed, list(pairs.skipped), skipped_folds,
                              runner.warnings() + _warnings(used, folds, pairs.labels, class_names), out_dir=out)
    result.timings = {"prepare_s": prepare_s, "train_s": train_s, "predict_s": predict_s,
                      "total_s": time.perf_counter() - started}
    result.details = runner.info()
    write_predictions(out, _as_folds(records), {"pooled": metrics, "per_dataset": per_dataset})
    write_report(out, result, method, protocol, class_names, fold_losses)
    return result


def run_loso(table: pd.DataFrame, method: str, config: FinetuneConfig, out_dir: str | Path,
             class_names: Sequence[str], **options: Any) -> dict[str, Any]:
    """Leave-one-subject-out evaluation (see :func:`evaluate`); returns the pooled metrics."""
    return evaluate(table, method, config, out_dir, class_names, protocol="loso", **options).metrics


def finetune(table: pd.DataFrame, config: FinetuneConfig, out_dir: str | Path, class_names: Sequence[str],
             method: str = "micronbert", skip_bad: bool = False, progress: bool = False,
             log: Callable[[str], None] = print) -> Path:
    """Train ``method`` on every usable labelled sample of ``table`` and write ``out_dir/model`` (the trained
    model), ``out_dir/classes.json`` (class names, method, configuration, samples used and skipped, the mean
    training loss of each epoch) and ``out_dir/training_loss.png``; returns ``out_dir``."""
    out = Path(out_dir)
    runner = get_method(method, config, len(class_names))
    pairs = load_labelled_pairs(table, runner.input_size(), skip_bad=skip_bad)
    for _, reason in pairs.skipped:
        log(f"skipped {reason}")
    if len(pairs) == 0:
        raise ValueError("no usable samples to train on")
    runner.prepare(pairs)
    runner.progress = progress
    runner.fit(np.arange(len(pairs)))
    runner.save(out / "model")
    write_json_atomically(out / "classes.json", {"classes": list(class_names), "method": method,
                                                  "config": config.to_dict(), "samples": len(pairs),
                                                  "skipped": pairs.skipped, "train_loss": runner.train_loss})
    if runner.train_loss:
        save_figure_atomically(training_loss_figure([runner.train_loss], f"{method} trained on {len(pairs)} samples"),
                               out / "training_loss.png")
    return out


# ------------------------------------------------------------------------------------------------ helpers
def _token(text: str) -> str:
    return re.sub(r"\s+", "_", str(text)) or "_"


def _clip_ids(table: pd.DataFrame) -> list[str]:
    """Clip names, with ``@onset`` added where one clip holds several samples (CAS(ME)^3)."""
    duplicated = table.duplicated(subset=["dataset", "subject", "clip"], keep=False).to_numpy()
    return [_token(f"{row.clip}@{int(row.onset)}" if dup else row.clip)
            for row, dup in zip(table.itertuples(index=False), duplicated)]


def _fold_records(table: pd.DataFrame, clips: list[str], test: np.ndarray,
                  predicted: np.ndarray) -> list[dict[str, Any]]:
    """Test predictions of a fold grouped by subject, as FoldPredictions-shaped dicts."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for position, pred in zip(test, predicted):
        row = table.iloc[position]
        subject = str(row["subject"]).split("/", 1)[-1]
        record = records.setdefault((str(row["dataset"]), subject), {
            "database": _token(row["dataset"]), "subject": _token(subject), "clips": [], "y_true": [], "y_pred": []})
        record["clips"].append(clips[position])
        record["y_true"].append(int(row["label"]))
        record["y_pred"].append(int(pred))
    return list(records.values())


def _as_folds(records: list[dict[str, Any]]) -> list[FoldPredictions]:
    return [FoldPredictions(r["database"], r["subject"], r["clips"], r["y_true"], r["y_pred"]) for r in records]


def _table_fingerprint(table: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for row in table.itertuples(index=False):
        digest.update(f"{row.dataset}|{row.subject}|{row.clip}|{row.onset}|{row.apex}|{row.label}\n".encode())
    return digest.hexdigest()


def _result_relevant(config: FinetuneConfig) -> dict[str, Any]:
    """The configuration without the fields that cannot change a prediction (where and how tokens are cached)."""
    data = config.to_dict()
    data["cache"] = {"dtype": config.cache.dtype}
    return data


def _fold_problem(fold: Fold, labels: np.ndarray) -> str | None:
    if len(fold.test) == 0:
        return f"fold {fold.name}: no test samples left (class scheme or skipped samples emptied it)"
    if len(fold.train) == 0:
        return f"fold {fold.name}: no training samples"
    if len(set(labels[fold.train].tolist())) < 2:
        return f"fold {fold.name}: training set holds one class only"
    return None


def _warnings(table: pd.DataFrame, folds: list[Fold], labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    notes = []
    for subject, rows in table.groupby("subject"):
        classes = sorted(set(int(v) for v in rows["label"]))
        if len(classes) == 1:
            notes.append(f"subject {subject} has samples of one class only ({class_names[classes[0]]})")
    for fold in folds:
        missing = sorted(set(labels[fold.test].tolist()) - set(labels[fold.train].tolist()))
        if missing:
            notes.append(f"fold {fold.name}: class(es) {[class_names[c] for c in missing]} of the test set never "
                         "occur in its training set")
    return notes


def _saved_fold(path: Path, fold_name: str) -> dict[str, Any]:
    """A fold's saved predictions, checked to belong to ``fold_name``."""
    try:
        saved = read_json_mapping(path, "saved fold")
    except ValueError as err:
        raise ValueError(f"{err}; delete the file to compute the fold again") from None
    records, name = saved.get("records"), saved.get("fold")
    if name != fold_name:
        raise ValueError(f"{path}: holds fold {name!r}, expected {fold_name!r}; delete the file to compute the "
                         "fold again")
    if not isinstance(records, list):
        raise ValueError(f"{path}: 'records' is not a list; delete the file to compute the fold again")
    losses = saved.get("train_loss")
    if losses is not None and not (isinstance(losses, list) and all(
            isinstance(value, (int, float)) and not isinstance(value, bool) for value in losses)):
        raise ValueError(f"{path}: 'train_loss' is not a list of numbers; delete the file to compute the fold again")
    return saved


def _progress(folds: list[Fold], enabled: bool) -> Iterator[Fold]:
    if not enabled:
        return iter(folds)
    from tqdm import tqdm

    return iter(tqdm(folds, desc="folds", unit="fold"))
