"""The resumable evaluation runner (``micronbert evaluate``) and training on all samples (``micronbert
finetune``).

:func:`evaluate` runs a registered method under a protocol. The method reads the samples its own way
(:meth:`~micronbert.evaluation.methods.Method.read`); every fold is checked for subject disjointness, trains with the
configuration's fixed budget and writes its predictions as it finishes (``folds/NNN.json``), so an interrupted run
resumes at the next fold. The report files are described in :mod:`micronbert.evaluation.report`.

``train.pretrain_on_synthetic N`` (MiE-X's protocol, any method): before each fold's training the method trains
on N synthetic AU micro-expressions (:func:`synthetic_pretraining_table`), the same set for every fold and run
with the same settings, rendered once and cached beside the input cache; no real sample is among them.

``select_on_test`` (``--select-on-test``): for the methods trained in epochs, the fold's test samples are also
scored after every epoch (without changing the training) and the best epoch per fold, chosen on those test
samples as the published pipelines did, is reported separately (:data:`SELECTION_WARNING`); the honest results
are the last epoch's, always.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from micronbert.data.datasets import load as load_dataset
from micronbert.data.synthetic import SynthConfig, write_synthetic_dataset
from micronbert.data.synthetic.config import MAX_SUBJECTS
from micronbert.data.synthetic.writers import CASME2_DIR
from micronbert.evaluation.baseline_methods import input_cache_dir
from micronbert.evaluation.folds import Fold, make_folds
from micronbert.evaluation.methods import (
    Method,
    Samples,
    canonical_method_name,
    check_method_sections,
    get_method,
)
from micronbert.evaluation.report import EvaluationResult, write_predictions, write_report
from micronbert.io import claim_folder, read_json_mapping, write_json_atomically
from micronbert.metrics import (
    FoldPredictions,
    per_dataset_metrics,
    pooled_metrics,
    predictions_table,
    write_predictions_csv,
)
from micronbert.train.finetune import FinetuneConfig
from micronbert.viz import save_figure_atomically, training_loss_figure

SELECTION_WARNING = (
    "SELECTED ON THE TEST SUBJECTS (--select-on-test): for every fold, the training epoch whose predictions scored "
    "best on that fold's own test samples was kept, as the published pipelines did. These numbers are optimistic "
    "by construction, not results; the honest results are the last epoch's, reported apart and never mixed with "
    "these.")
SELECTION_CRITERION = ("per fold, the epoch with the highest UF1 on the fold's test samples (ties: the higher "
                       "accuracy, then the later epoch)")
# The CASME II emotion of a synthetic sample (micronbert.data.synthetic.casme2_emotion) → the class names it takes
# in a run, the first one the run's classes hold.
SYNTHETIC_CLASS_NAMES = {
    "happiness": ("happiness", "happy", "positive"),
    "surprise": ("surprise",),
    "disgust": ("disgust", "negative"),
    "repression": ("repression", "negative"),
    "others": ("others",),
}
SYNTHETIC_OBJECTIVE = {"positive": ("happiness",), "surprise": ("surprise",), "negative": ("disgust", "repression"),
                       "others": ("others",)}
SYNTHETIC_CLIPS_PER_SUBJECT = 4


def evaluate(table: pd.DataFrame, method: str, config: FinetuneConfig, out_dir: str | Path,
             class_names: Sequence[str], protocol: str = "loso", test_subjects: Sequence[str] = (),
             skip_bad: bool = False, progress: bool = False, log: Callable[[str], None] | None = None,
             select_on_test: bool = False) -> EvaluationResult:
    """Run ``method`` under ``protocol`` on ``table``, writing every fold's predictions as it finishes.

    A re-run with the same inputs and ``out_dir`` resumes after the last finished fold. Unusable samples and
    folds raise ``ValueError`` naming them unless ``skip_bad``; then they are left out and reported.
    ``select_on_test`` also reports, apart, the best epoch per fold chosen on its test samples (not a result).
    """
    log = log or (lambda message: None)
    out = Path(out_dir)
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError(f"need at least two classes, got {list(class_names)}")
    started = time.perf_counter()
    name = canonical_method_name(method)
    check_method_sections(config)
    runner = get_method(name, config, num_classes)
    runner.check_protocol(protocol)
    samples = runner.read(table, skip_bad=skip_bad, progress=progress)
    for _, reason in samples.skipped:
        log(f"skipped sample {reason}")
    used = table.iloc[samples.rows].reset_index(drop=True)
    if len(used) == 0:
        raise ValueError("no usable samples to evaluate")
    if samples.labels.max() >= num_classes:
        raise ValueError(f"label {samples.labels.max()} outside the {num_classes} classes {list(class_names)}")
    folds = make_folds(used, protocol, test_subjects)
    synthetic, synthetic_facts = _synthetic_samples(runner, config, class_names, progress, log)
    identity = {"method": name, "protocol": protocol, "config": _result_relevant(config),
                "classes": list(class_names), "table": _table_fingerprint(used), "test_subjects": list(test_subjects),
                "select_on_test": bool(select_on_test), "method_inputs": runner.identity()}
    out.mkdir(parents=True, exist_ok=True)
    claim_folder(out / "run.json", identity, "evaluation")
    for warning in runner.warnings():
        log(f"warning: {warning}")
    unavailable = runner.select_on_test_unavailable() if select_on_test else None
    if select_on_test:
        log(f"warning: {SELECTION_WARNING}" if unavailable is None else
            f"warning: --select-on-test is not available for {name}: {unavailable}")
    runner.prepare(samples, synthetic)
    collected = _Collected(watch=select_on_test and unavailable is None)
    collected.prepare_s = time.perf_counter() - started
    clips = _clip_ids(used)
    for index, fold in enumerate(_progress(folds, progress)):
        fold_file = out / "folds" / f"{index:03d}.json"
        if fold_file.is_file():
            collected.add_saved(_saved_fold(fold_file, fold.name, collected.watch), fold.name)
            continue
        problem = _fold_problem(fold, samples.labels)
        if problem:
            if not skip_bad:
                raise ValueError(problem)
            log(f"skipped {problem}")
            collected.skipped_folds.append((fold.name, problem))
            write_json_atomically(fold_file, {"fold": fold.name, "records": [], "skipped": problem})
            continue
        saved = _run_fold(runner, fold, used, clips, samples.labels, num_classes, collected)
        write_json_atomically(fold_file, saved)
        collected.add_fold(saved, fold.name)
        write_predictions(out, _as_folds(collected.records))
        log(f"fold {index + 1}/{len(folds)} {fold.name}: {len(fold.test)} test samples")
    if not collected.records:
        raise ValueError("every fold was skipped: nothing to score")
    predictions = predictions_table(_as_folds(collected.records))
    metrics = pooled_metrics(predictions["gt"].to_numpy(), predictions["pred"].to_numpy(), num_classes)
    per_dataset = per_dataset_metrics(predictions, num_classes)
    result = EvaluationResult(metrics, per_dataset, len(folds), collected.resumed, list(samples.skipped),
                              collected.skipped_folds,
                              runner.warnings() + _warnings(used, folds, samples.labels, class_names), out_dir=out)
    result.timings = {"prepare_s": collected.prepare_s, "train_s": collected.train_s,
                      "predict_s": collected.predict_s, "total_s": time.perf_counter() - started}
    result.details = runner.info()
    result.synthetic = synthetic_facts
    if select_on_test:
        result.selected_on_test = _selected_metrics(out, collected, num_classes, unavailable)
    write_predictions(out, _as_folds(collected.records), {"pooled": metrics, "per_dataset": per_dataset})
    write_report(out, result, name, protocol, class_names, collected.losses)
    return result


@dataclass
class _Collected:
    """What the folds of a run gave so far (computed now or resumed from their files)."""

    watch: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    selected: list[dict[str, Any]] = field(default_factory=list)
    selected_epochs: list[dict[str, Any]] = field(default_factory=list)
    skipped_folds: list[tuple[str, str]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)
    resumed: int = 0
    prepare_s: float = 0.0
    train_s: float = 0.0
    predict_s: float = 0.0

    def add_fold(self, saved: dict[str, Any], name: str) -> None:
        """Add a fold's saved content (its predictions, losses and, with --select-on-test, its chosen epoch)."""
        self.records.extend(saved["records"])
        if saved.get("skipped"):
            self.skipped_folds.append((name, saved["skipped"]))
        if saved.get("train_loss"):
            self.losses.append(saved["train_loss"])
        chosen = saved.get("selected_on_test")
        if self.watch and chosen:
            self.selected.extend(chosen["records"])
            self.selected_epochs.append({"fold": name, "epoch": chosen["epoch"], "epochs": chosen["epochs"]})

    def add_saved(self, saved: dict[str, Any], name: str) -> None:
        """Add a fold resumed from its file."""
        self.add_fold(saved, name)
        self.resumed += 1


def _run_fold(runner: Method, fold: Fold, used: pd.DataFrame, clips: list[str], labels: np.ndarray,
              num_classes: int, collected: _Collected) -> dict[str, Any]:
    """Train and test one fold; returns what its file holds."""
    clock = time.perf_counter()
    runner.fit(fold.train, target=fold.test if runner.transductive else None,
               watch=fold.test if collected.watch else None)
    collected.train_s += time.perf_counter() - clock
    clock = time.perf_counter()
    probabilities = runner.predict_proba(fold.test)
    collected.predict_s += time.perf_counter() - clock
    saved = {"fold": fold.name, "records": _fold_records(used, clips, fold.test, probabilities.argmax(axis=1)),
             "skipped": None, "probabilities": probabilities.round(6).tolist(), "train_loss": runner.train_loss,
             "pretrain_loss": runner.pretrain_loss}
    if collected.watch:
        saved["selected_on_test"] = _best_epoch(runner.epoch_probabilities or [], used, clips, fold, labels,
                                                num_classes)
    return saved


def _best_epoch(epochs: list[np.ndarray], used: pd.DataFrame, clips: list[str], fold: Fold, labels: np.ndarray,
                num_classes: int) -> dict[str, Any] | None:
    """The epoch of :data:`SELECTION_CRITERION` among the per-epoch test probabilities, with its records."""
    if not epochs:
        return None
    truth = labels[fold.test]
    scores = []
    for epoch, probabilities in enumerate(epochs):
        metrics = pooled_metrics(truth, probabilities.argmax(axis=1), num_classes)
        scores.append((metrics["uf1"], metrics["accuracy"], epoch))
    uf1, accuracy, epoch = max(scores)
    return {"epoch": epoch + 1, "epochs": len(epochs), "fold_uf1": uf1, "fold_accuracy": accuracy,
            "records": _fold_records(used, clips, fold.test, epochs[epoch].argmax(axis=1))}


def _selected_metrics(out: Path, collected: _Collected, num_classes: int, unavailable: str | None) -> dict[str, Any]:
    """The pooled metrics of the per-fold best epochs (``selected_on_test`` of metrics.json), and their
    predictions in ``selected_on_test_predictions.csv``."""
    if unavailable is not None:
        return {"available": False, "reason": unavailable, "warning": SELECTION_WARNING}
    if not collected.selected:
        return {"available": False, "reason": "no fold was trained", "warning": SELECTION_WARNING}
    folds = _as_folds(collected.selected)
    write_predictions_csv(folds, out / "selected_on_test_predictions.csv")
    table = predictions_table(folds)
    metrics = pooled_metrics(table["gt"].to_numpy(), table["pred"].to_numpy(), num_classes)
    return {"available": True, "uf1": metrics["uf1"], "uar": metrics["uar"], "accuracy": metrics["accuracy"],
            "per_dataset": per_dataset_metrics(table, num_classes), "pooled": metrics,
            "epochs": collected.selected_epochs, "criterion": SELECTION_CRITERION, "warning": SELECTION_WARNING}


def run_loso(table: pd.DataFrame, method: str, config: FinetuneConfig, out_dir: str | Path,
             class_names: Sequence[str], **options: Any) -> dict[str, Any]:
    """Leave-one-subject-out evaluation (see :func:`evaluate`); returns the pooled metrics."""
    return evaluate(table, method, config, out_dir, class_names, protocol="loso", **options).metrics


def finetune(table: pd.DataFrame, config: FinetuneConfig, out_dir: str | Path, class_names: Sequence[str],
             method: str = "micronbert", skip_bad: bool = False, progress: bool = False,
             log: Callable[[str], None] = print) -> Path:
    """Train ``method`` on every usable labelled sample of ``table`` and write ``out_dir/model`` (the trained
    model), ``out_dir/classes.json`` (class names, method, configuration, samples used and skipped, the mean
    training loss of each epoch, the synthetic pre-training if any) and ``out_dir/training_loss.png``; returns
    ``out_dir``."""
    out = Path(out_dir)
    name = canonical_method_name(method)
    check_method_sections(config)
    runner = get_method(name, config, len(class_names))
    runner.check_protocol(None)
    samples = runner.read(table, skip_bad=skip_bad, progress=progress)
    for _, reason in samples.skipped:
        log(f"skipped {reason}")
    if len(samples) == 0:
        raise ValueError("no usable samples to train on")
    synthetic, synthetic_facts = _synthetic_samples(runner, config, class_names, progress, log)
    runner.prepare(samples, synthetic)
    runner.progress = progress
    runner.fit(np.arange(len(samples)))
    runner.save(out / "model", class_names)
    write_json_atomically(out / "classes.json", {"classes": list(class_names), "method": name,
                                                  "config": config.to_dict(), "samples": len(samples),
                                                  "skipped": samples.skipped, "train_loss": runner.train_loss,
                                                  "pretrain_loss": runner.pretrain_loss,
                                                  "synthetic": synthetic_facts, "details": runner.info()})
    if runner.train_loss:
        save_figure_atomically(training_loss_figure([runner.train_loss], f"{name} trained on {len(samples)} samples"),
                               out / "training_loss.png")
    return out


# ------------------------------------------------------------------------------------------------ MiE-X
def synthetic_class_map(class_names: Sequence[str]) -> dict[str, int]:
    """The class index of each synthetic CASME II emotion the run's classes take (:data:`SYNTHETIC_CLASS_NAMES`:
    under the MEGC 3-class scheme happiness → positive, surprise → surprise, disgust and repression → negative,
    others dropped). Raises ValueError naming the classes no synthetic sample can take."""
    names = list(class_names)
    mapping = {}
    for emotion, candidates in SYNTHETIC_CLASS_NAMES.items():
        found = next((name for name in candidates if name in names), None)
        if found is not None:
            mapping[emotion] = names.index(found)
    missing = [name for index, name in enumerate(names) if index not in mapping.values()]
    if missing:
        raise ValueError(f"train.pretrain_on_synthetic: no synthetic micro-expression maps to the class(es) "
                         f"{missing} of this run: the synthetic classes are positive (CASME II happiness), surprise, "
                         "negative (disgust or repression, by their action units) and others; use a scheme they "
                         "cover (megc2019-3class, smic-3class, casme2-5class, casme3-4class, casme3-3class)")
    return mapping


def synthetic_pretraining_table(config: FinetuneConfig, class_names: Sequence[str],
                                log: Callable[[str], None] = print) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The sample table of ``train.pretrain_on_synthetic`` synthetic AU micro-expressions labelled with the run's
    classes (:func:`synthetic_class_map`), and facts for the report.

    The clips are rendered by :func:`~micronbert.data.synthetic.write_synthetic_dataset` (CASME II-like, 200 fps,
    ``baselines.synthetic`` settings, seed ``train.seed``; 4 clips per synthetic identity, classes in turn among
    those the run maps) into ``<input cache>/synthetic/<settings digest>`` once, and read back from there by
    every later fold and run. Their dataset is named ``synthetic``.
    """
    count = config.train.pretrain_on_synthetic
    mapping = synthetic_class_map(class_names)
    objective = tuple(name for name, emotions in SYNTHETIC_OBJECTIVE.items() if set(emotions) & set(mapping))
    subjects = min(MAX_SUBJECTS, math.ceil(count / SYNTHETIC_CLIPS_PER_SUBJECT))
    per_subject = math.ceil(count / subjects)
    if per_subject > 99:
        raise ValueError(f"train.pretrain_on_synthetic: at most {99 * MAX_SUBJECTS} synthetic samples, got {count}")
    settings = config.baselines.synthetic
    synth = SynthConfig(seed=config.train.seed, subjects=subjects, clips_per_subject=per_subject, classes=objective,
                        duration_s=settings.duration_s, nuisance_strength=settings.nuisance_strength,
                        size=settings.size, unlabeled_videos=0, write_mp4=False)
    digest = hashlib.sha256(json.dumps(synth.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    folder = input_cache_dir(config) / "synthetic" / digest
    if not folder.is_dir():
        log(f"rendering {subjects * per_subject} synthetic micro-expressions into {folder}")
        write_synthetic_dataset(folder, synth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = load_dataset("casme2", folder / CASME2_DIR)
    samples["label"] = pd.array([mapping.get(str(emotion)) for emotion in samples["emotion"]], dtype="Int64")
    samples = samples[samples["label"].notna()].head(count).reset_index(drop=True)
    samples["dataset"] = "synthetic"
    samples["subject"] = [f"synthetic/{str(subject).split('/', 1)[-1]}" for subject in samples["subject"]]
    counts = samples["label"].value_counts()
    facts = {"samples": len(samples), "requested": count, "folder": str(folder), "seed": config.train.seed,
             "settings": settings.to_dict(),
             "classes": {name: int(counts.get(index, 0)) for index, name in enumerate(class_names)},
             "mapping": {emotion: class_names[index] for emotion, index in mapping.items()}}
    return samples, facts


def _synthetic_samples(runner: Method, config: FinetuneConfig, class_names: Sequence[str], progress: bool,
                       log: Callable[[str], None]) -> tuple[Samples | None, dict[str, Any] | None]:
    """The synthetic pre-training samples as ``runner`` reads them, and their facts (None, None when off)."""
    if config.train.pretrain_on_synthetic == 0:
        return None, None
    table, facts = synthetic_pretraining_table(config, class_names, log)
    samples = runner.read(table, skip_bad=False, progress=progress)
    log(f"synthetic pre-training on {len(samples)} samples: {facts['classes']}")
    return samples, facts


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
    """The configuration without the fields that cannot change a prediction (where and how tokens and inputs are
    cached)."""
    data = config.to_dict()
    data["cache"] = {"dtype": config.cache.dtype}
    data["baselines"].pop("cache_dir", None)
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


def _saved_fold(path: Path, fold_name: str, selection: bool = False) -> dict[str, Any]:
    """A fold's saved predictions, checked to belong to ``fold_name`` (and, with ``selection``, to hold the epoch
    chosen on its test samples when it trained)."""
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
    chosen = saved.get("selected_on_test")
    if selection and not saved.get("skipped") and chosen is not None and not (
            isinstance(chosen, dict) and isinstance(chosen.get("records"), list) and "epoch" in chosen):
        raise ValueError(f"{path}: 'selected_on_test' is not a chosen epoch with its records; delete the file to "
                         "compute the fold again")
    return saved


def _progress(folds: list[Fold], enabled: bool) -> Iterator[Fold]:
    if not enabled:
        return iter(folds)
    from tqdm import tqdm

    return iter(tqdm(folds, desc="folds", unit="fold"))
