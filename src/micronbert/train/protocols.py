"""Evaluation protocols and the resumable evaluation runner: ``micronbert evaluate``.

Protocols (DATASETS.md §14): ``loso`` (one fold per subject; on a multi-dataset table such as the MEGC 2019
composite the subjects are namespaced by dataset, giving 68 folds there), ``megc2019`` (the same, with
per-dataset metrics), ``lodo`` (leave one dataset out) and ``split`` (one fixed train/test split by subject).
Every fold is checked for subject disjointness before anything trains on it, the training budget per fold is
fixed by the configuration, and nothing is chosen on the test subject.

Methods (``METHODS``): ``micronbert`` (the configured weights and mode), ``vit-scratch`` (the same network and
head from random initialisation, to show what pre-training buys), ``ststnet`` (STSTNet on onset→apex flow
images), ``framediff`` (frame difference + linear classifier) and ``flowgrid`` (onset→apex optical flow averaged
per grid cell, median removed, + linear classifier).

Outputs in ``out_dir``: ``run.json`` (what is evaluated), ``folds/NNN.json`` (written as each fold finishes;
an interrupted run resumes at the next fold), ``predictions_megc.txt`` / ``.csv`` / ``.json``,
``metrics.json``, ``results.md`` (results table, per class, skipped samples/folds), ``confusion_matrix.png`` and,
for the methods trained in epochs, ``training_loss.png`` (each fold's training loss per epoch and their mean;
the values are in the fold files).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from micronbert.baselines import (
    FlowGridClassifier, FlowGridConfig, FrameDifferenceClassifier, FrameDifferenceConfig, LinearReadout,
    PairFeatureClassifier, STSTNet, flow_images_to_tensor,
)
from micronbert.data.flow import flow_features
from micronbert.train.finetune import (
    FinetuneConfig, PairData, add_sample_arguments, build_model, cached_pair_tokens, class_weights,
    config_from_args, load_pairs, head_inputs, predict_features, predict_pairs, predict_tokens,
    read_samples, train_head_on_features, train_on_pairs, train_on_tokens,
)
from micronbert.io import claim_folder, read_json_mapping, write_json_atomically, write_text_atomically
from micronbert.train.metrics import (
    FoldPredictions, per_dataset_metrics, pooled_metrics, predictions_table, write_megc_log,
    write_predictions_csv, write_predictions_json,
)

PROTOCOLS = ("loso", "megc2019", "lodo", "split")


class SubjectLeakError(AssertionError):
    """A subject appears in both the training and the test part of a fold."""


# ------------------------------------------------------------------------------------------- folds
@dataclass(frozen=True)
class Fold:
    """One train/test split: row positions into the evaluated table."""

    name: str
    train: np.ndarray
    test: np.ndarray


def assert_subject_disjoint(table: pd.DataFrame, fold: Fold) -> None:
    """Raise :class:`SubjectLeakError` naming the subjects if training and test parts share one."""
    train_subjects = set(table["subject"].iloc[fold.train])
    test_subjects = set(table["subject"].iloc[fold.test])
    shared = sorted(train_subjects & test_subjects)
    if shared:
        raise SubjectLeakError(f"fold {fold.name}: subject(s) {shared} in both training and test sets")


def _checked(table: pd.DataFrame, folds: Iterator[Fold]) -> Iterator[Fold]:
    for fold in folds:
        assert_subject_disjoint(table, fold)
        yield fold


def loso_folds(table: pd.DataFrame) -> Iterator[Fold]:
    """Leave one subject out: one fold per (namespaced) subject, in sorted order."""
    subjects = table["subject"].astype(str).to_numpy()
    positions = np.arange(len(table))

    def folds() -> Iterator[Fold]:
        for subject in sorted(set(subjects)):
            yield Fold(subject, positions[subjects != subject], positions[subjects == subject])
    return _checked(table, folds())


def lodo_folds(table: pd.DataFrame) -> Iterator[Fold]:
    """Leave one dataset out: one fold per dataset (needs at least two datasets)."""
    datasets = table["dataset"].astype(str).to_numpy()
    names = sorted(set(datasets))
    if len(names) < 2:
        raise ValueError(f"leave-one-dataset-out needs at least two datasets, the table holds {names}")
    positions = np.arange(len(table))
    return _checked(table, (Fold(name, positions[datasets != name], positions[datasets == name]) for name in names))


def split_folds(table: pd.DataFrame, test_subjects: Sequence[str]) -> Iterator[Fold]:
    """One fixed split: the samples of ``test_subjects`` are tested, the others train."""
    subjects = table["subject"].astype(str).to_numpy()
    unknown = sorted(set(test_subjects) - set(subjects))
    if unknown:
        raise ValueError(f"test subject(s) {unknown} have no usable samples: not in the table (subjects are "
                         "namespaced, e.g. casme2/sub01), or every sample was dropped by the class scheme or skipped")
    test = np.isin(subjects, list(test_subjects))
    positions = np.arange(len(table))
    return _checked(table, iter([Fold("split", positions[~test], positions[test])]))


def make_folds(table: pd.DataFrame, protocol: str, test_subjects: Sequence[str] = ()) -> list[Fold]:
    """The folds of ``protocol`` (see ``PROTOCOLS``) over ``table``."""
    if protocol in ("loso", "megc2019"):
        return list(loso_folds(table))
    if protocol == "lodo":
        return list(lodo_folds(table))
    if protocol == "split":
        if not test_subjects:
            raise ValueError("the split protocol needs test subjects (--test-subjects)")
        return list(split_folds(table, test_subjects))
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


# ----------------------------------------------------------------------------------------- methods
@dataclass
class FoldTiming:
    """Seconds spent training and predicting in one fold."""

    train_s: float = 0.0
    predict_s: float = 0.0


class Method:
    """A recognition method: ``prepare`` once on all pairs, then ``fit_predict`` per fold.

    ``train_loss``: the mean training loss of each epoch of the last ``fit_predict`` (None for a method
    trained without epochs).
    """

    name = ""
    train_loss: list[float] | None = None

    def __init__(self, config: FinetuneConfig, num_classes: int) -> None:
        self.config = config
        self.num_classes = num_classes

    def prepare(self, pairs: PairData) -> None:
        """Work shared by every fold (encoding, flow); the default keeps the pairs."""
        self.pairs = pairs

    def fit_predict(self, train: np.ndarray, test: np.ndarray, timing: FoldTiming) -> np.ndarray:
        """Train on the pairs at ``train`` and return class probabilities (len(test), classes)."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Facts about the run worth reporting (e.g. how many frames were encoded)."""
        return {}


class MicronBertMethod(Method):
    """μ-BERT with the configured weights and mode (the recognition head of METHOD.md §8)."""

    name = "micronbert"
    pretrained = True

    def prepare(self, pairs: PairData) -> None:
        self.pairs = pairs
        torch.manual_seed(self.config.seed)  # the random encoder of vit-scratch depends on the seed alone
        self.initial = build_model(self.config, self.num_classes, pretrained=self.pretrained)
        self.cache_stats = None
        if self.config.mode == "frozen":
            self.onset_tokens, self.apex_tokens, self.cache_stats = cached_pair_tokens(self.initial, pairs,
                                                                                       self.config)
            if self.config.frozen_train == "head":
                self.features = head_inputs(self.initial, self.onset_tokens, self.apex_tokens)

    def info(self) -> dict[str, Any]:
        if self.cache_stats is None:
            return {}
        return {"frames_encoded": self.cache_stats.encoded, "frames_from_cache": self.cache_stats.hits}

    def fit_predict(self, train: np.ndarray, test: np.ndarray, timing: FoldTiming) -> np.ndarray:
        torch.manual_seed(self.config.seed)
        model = copy.deepcopy(self.initial)
        model.reset_head(self.num_classes, dropout=self.config.head_dropout)
        labels = self.pairs.labels[train]
        start = time.perf_counter()
        if self.config.mode == "frozen" and self.config.frozen_train == "head":
            self.train_loss = train_head_on_features(model, self.features[train], labels, self.config)
            timing.train_s += time.perf_counter() - start
            start = time.perf_counter()
            probabilities = predict_features(model, self.features[test])
        elif self.config.mode == "frozen":
            self.train_loss = train_on_tokens(model, self.onset_tokens[train], self.apex_tokens[train], labels,
                                              self.config)
            timing.train_s += time.perf_counter() - start
            start = time.perf_counter()
            probabilities = predict_tokens(model, self.onset_tokens[test], self.apex_tokens[test])
        else:
            self.train_loss = train_on_pairs(model, self.pairs.onsets[train], self.pairs.apexes[train], labels,
                                             self.config)
            timing.train_s += time.perf_counter() - start
            start = time.perf_counter()
            probabilities = predict_pairs(model, self.pairs.onsets[test], self.pairs.apexes[test])
        timing.predict_s += time.perf_counter() - start
        return probabilities


class VitScratchMethod(MicronBertMethod):
    """The same encoder, DMA and head from random initialisation (no pre-training)."""

    name = "vit-scratch"
    pretrained = False


class STSTNetMethod(Method):
    """STSTNet trained from scratch on 28×28 (u, v, strain) onset→apex flow images."""

    name = "ststnet"

    def prepare(self, pairs: PairData) -> None:
        self.pairs = pairs
        images = [flow_features(onset, apex, method=self.config.flow_method)
                  for onset, apex in zip(pairs.onsets, pairs.apexes)]
        self.inputs = flow_images_to_tensor(np.stack(images)) if images else torch.zeros(0, 3, 28, 28)

    def fit_predict(self, train: np.ndarray, test: np.ndarray, timing: FoldTiming) -> np.ndarray:
        torch.manual_seed(self.config.seed)
        generator = torch.Generator().manual_seed(self.config.seed)
        network = STSTNet(self.num_classes)
        optimiser = torch.optim.Adam(network.parameters(), lr=self.config.ststnet_lr)
        labels = torch.as_tensor(self.pairs.labels[train])
        weights = class_weights(self.pairs.labels[train], self.num_classes) if self.config.class_weighted else None
        inputs = self.inputs[train]
        start = time.perf_counter()
        network.train()
        self.train_loss = []
        for _ in range(self.config.ststnet_epochs):
            total, seen = 0.0, 0
            for batch in torch.randperm(len(train), generator=generator).split(self.config.batch_size):
                if len(batch) < 2:
                    continue  # BatchNorm needs two samples
                loss = torch.nn.functional.cross_entropy(network(inputs[batch]), labels[batch], weight=weights)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total, seen = total + loss.item() * len(batch), seen + len(batch)
            self.train_loss.append(total / max(seen, 1))
        timing.train_s += time.perf_counter() - start
        start = time.perf_counter()
        network.eval()
        with torch.no_grad():
            probabilities = torch.softmax(network(self.inputs[test]), dim=1).numpy()
        timing.predict_s += time.perf_counter() - start
        return probabilities


class LinearBaselineMethod(Method):
    """A :class:`~micronbert.baselines.PairFeatureClassifier`: features of every pair computed once, a linear
    read-out fitted per fold."""

    def classifier(self) -> PairFeatureClassifier:
        raise NotImplementedError

    def prepare(self, pairs: PairData) -> None:
        self.pairs = pairs
        classifier = self.classifier()
        self.readout_config = classifier.config
        self.features = (classifier.features(list(pairs.onsets), list(pairs.apexes)) if len(pairs.labels)
                         else np.zeros((0, 1)))

    def fit_predict(self, train: np.ndarray, test: np.ndarray, timing: FoldTiming) -> np.ndarray:
        readout = LinearReadout(max(self.num_classes, 2), self.readout_config)
        start = time.perf_counter()
        readout.fit(self.features[train], self.pairs.labels[train])
        timing.train_s += time.perf_counter() - start
        start = time.perf_counter()
        probabilities = readout.predict_proba(self.features[test])
        timing.predict_s += time.perf_counter() - start
        return probabilities[:, :self.num_classes]


class FrameDiffMethod(LinearBaselineMethod):
    """Grey apex − onset difference, downsampled, multinomial logistic regression."""

    name = "framediff"

    def classifier(self) -> PairFeatureClassifier:
        return FrameDifferenceClassifier(max(self.num_classes, 2), FrameDifferenceConfig(
            size=self.config.framediff_size, balanced=self.config.class_weighted))


class FlowGridMethod(LinearBaselineMethod):
    """Onset→apex optical flow averaged per grid cell, median removed, multinomial logistic regression."""

    name = "flowgrid"

    def classifier(self) -> PairFeatureClassifier:
        return FlowGridClassifier(max(self.num_classes, 2), FlowGridConfig(
            cells=self.config.flowgrid_cells, method=self.config.flowgrid_method,
            balanced=self.config.class_weighted))


METHODS: dict[str, type[Method]] = {method.name: method for method in
                                    (MicronBertMethod, VitScratchMethod, STSTNetMethod, FrameDiffMethod,
                                     FlowGridMethod)}


def get_method(name: str, config: FinetuneConfig, num_classes: int) -> Method:
    """An instance of the method called ``name``; ValueError lists the names."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name](config, num_classes)


# ------------------------------------------------------------------------------------------ runner
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


def _table_fingerprint(table: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for row in table.itertuples(index=False):
        digest.update(f"{row.dataset}|{row.subject}|{row.clip}|{row.onset}|{row.apex}|{row.label}\n".encode())
    return digest.hexdigest()


def _result_relevant(config: FinetuneConfig) -> dict[str, Any]:
    """The configuration without the fields that cannot change a prediction (where and how tokens are cached)."""
    return {k: v for k, v in config.to_dict().items() if k not in ("cache_dir", "encode_batch_size")}


def _fold_problem(fold: Fold, labels: np.ndarray) -> str | None:
    if len(fold.test) == 0:
        return f"fold {fold.name}: no test samples left (class scheme or skipped samples emptied it)"
    if len(fold.train) == 0:
        return f"fold {fold.name}: no training samples"
    if len(set(labels[fold.train].tolist())) < 2:
        return f"fold {fold.name}: training set holds one class only"
    return None


def _method_warnings(method: str, config: FinetuneConfig) -> list[str]:
    if method == "micronbert" and not config.weights:
        return ["method micronbert without weights starts from random initialisation, as vit-scratch does; "
                "give the pre-trained model with --weights (or weights: in the configuration)"]
    return []


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
    pairs = load_pairs(table, _input_size(method, config), skip_bad=skip_bad)
    for _, reason in pairs.skipped:
        log(f"skipped sample {reason}")
    used = table.iloc[pairs.rows].reset_index(drop=True)
    if len(used) == 0:
        raise ValueError("no usable samples to evaluate")
    if pairs.labels.max() >= num_classes:
        raise ValueError(f"label {pairs.labels.max()} outside the {num_classes} classes {list(class_names)}")
    folds = make_folds(used, protocol, test_subjects)
    identity = {"method": method, "protocol": protocol, "config": _result_relevant(config),
                "classes": list(class_names),
                "table": _table_fingerprint(used), "test_subjects": list(test_subjects)}
    out.mkdir(parents=True, exist_ok=True)
    claim_folder(out / "run.json", identity, "evaluation")
    for warning in _method_warnings(method, config):
        log(f"warning: {warning}")
    runner = get_method(method, config, num_classes)
    runner.prepare(pairs)
    prepare_s = time.perf_counter() - started
    clips = _clip_ids(used)
    records, skipped_folds, fold_losses, timing = [], [], [], FoldTiming()
    resumed = 0
    iterator = _progress(folds, progress)
    for index, fold in enumerate(iterator):
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
        probabilities = runner.fit_predict(fold.train, fold.test, timing)
        fold_records = _fold_records(used, clips, fold.test, probabilities.argmax(axis=1))
        write_json_atomically(fold_file, {"fold": fold.name, "records": fold_records, "skipped": None,
                                          "probabilities": probabilities.round(6).tolist(),
                                          "train_loss": runner.train_loss})
        if runner.train_loss:
            fold_losses.append(runner.train_loss)
        records.extend(fold_records)
        _write_predictions(out, records)
        log(f"fold {index + 1}/{len(folds)} {fold.name}: {len(fold.test)} test samples")
    if not records:
        raise ValueError("every fold was skipped: nothing to score")
    result = _finish(out, records, class_names, pairs.skipped, skipped_folds,
                     _method_warnings(method, config) + _warnings(used, folds, pairs.labels, class_names),
                     len(folds), resumed)
    result.timings = {"prepare_s": prepare_s, "train_s": timing.train_s, "predict_s": timing.predict_s,
                      "total_s": time.perf_counter() - started}
    result.details = runner.info()
    _write_report(out, result, method, protocol, class_names, fold_losses)
    return result


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


def run_loso(table: pd.DataFrame, method: str, config: FinetuneConfig, out_dir: str | Path,
             class_names: Sequence[str], **options: Any) -> dict[str, Any]:
    """Leave-one-subject-out evaluation (see :func:`evaluate`); returns the pooled metrics."""
    return evaluate(table, method, config, out_dir, class_names, protocol="loso", **options).metrics


def _input_size(method: str, config: FinetuneConfig) -> int:
    if method == "micronbert" and config.weights:
        from micronbert.model.checkpoint import read_config

        return read_config(config.weights).img_size
    from micronbert.model.config import named_config

    return named_config(config.model, **config.model_overrides).img_size


def _progress(folds: list[Fold], enabled: bool) -> Iterator[Fold]:
    if not enabled:
        return iter(folds)
    from tqdm import tqdm

    return iter(tqdm(folds, desc="folds", unit="fold"))


def _as_folds(records: list[dict[str, Any]]) -> list[FoldPredictions]:
    return [FoldPredictions(r["database"], r["subject"], r["clips"], r["y_true"], r["y_pred"]) for r in records]


def _write_predictions(out: Path, records: list[dict[str, Any]], metrics: dict[str, Any] | None = None) -> None:
    folds = _as_folds(records)
    write_megc_log(folds, out / "predictions_megc.txt")
    write_predictions_csv(folds, out / "predictions.csv")
    write_predictions_json(folds, out / "predictions.json", metrics)


def _finish(out: Path, records: list[dict[str, Any]], class_names: Sequence[str],
            skipped_samples: list[tuple[str, str]], skipped_folds: list[tuple[str, str]], warnings: list[str],
            folds_done: int, resumed: int) -> EvaluationResult:
    num_classes = len(class_names)
    predictions = predictions_table(_as_folds(records))
    metrics = pooled_metrics(predictions["gt"].to_numpy(), predictions["pred"].to_numpy(), num_classes)
    per_dataset = per_dataset_metrics(predictions, num_classes)
    _write_predictions(out, records, {"pooled": metrics, "per_dataset": per_dataset})
    return EvaluationResult(metrics, per_dataset, folds_done, resumed, list(skipped_samples), skipped_folds,
                            warnings, out_dir=out)


def _write_report(out: Path, result: EvaluationResult, method: str, protocol: str,
                  class_names: Sequence[str], fold_losses: list[list[float]]) -> None:
    write_json_atomically(out / "metrics.json", {
        "method": method, "protocol": protocol, "classes": list(class_names), "pooled": result.metrics,
        "per_dataset": result.per_dataset, "skipped_samples": result.skipped_samples,
        "skipped_folds": result.skipped_folds, "warnings": result.warnings, "timings": result.timings,
        "details": result.details})
    confusion_figure(np.asarray(result.metrics["confusion_matrix"]), class_names,
                     f"{method} · {protocol}", out / "confusion_matrix.png")
    write_text_atomically(out / "results.md", results_markdown(result, method, protocol, class_names))
    if fold_losses:
        from micronbert.viz import save_figure_atomically, training_loss_figure

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


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str, path: Path) -> Path:
    """Draw the confusion matrix (rows true, columns predicted) with counts and save it as PNG."""
    from micronbert.viz import draw_confusion, plt, save_figure_atomically

    size = 1.0 + 0.7 * len(class_names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    draw_confusion(axis, matrix, class_names, title)
    return save_figure_atomically(figure, path)


# --------------------------------------------------------------------------------------------- CLI
def _run_evaluate(args: argparse.Namespace) -> int:
    samples, class_names = read_samples(args.table, args.dataset, args.root, args.scheme)
    test_subjects = [s for s in (args.test_subjects or "").split(",") if s]
    result = evaluate(samples, args.method, config_from_args(args), args.out, class_names,
                      protocol=args.protocol, test_subjects=test_subjects, skip_bad=args.skip_bad,
                      progress=not args.quiet, log=print)
    m = result.metrics
    print(f"{args.method} {args.protocol}: UF1 {m['uf1']:.4f}  UAR {m['uar']:.4f}  accuracy {m['accuracy']:.4f} "
          f"over {m['num_samples']} samples; report in {args.out}/results.md")
    if result.skipped_samples or result.skipped_folds:
        print(f"skipped {len(result.skipped_samples)} sample(s) and {len(result.skipped_folds)} fold(s); "
              "see results.md")
    return 0


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``micronbert evaluate``."""
    parser = subparsers.add_parser("evaluate", help="cross-validated recognition scores (LOSO, MEGC, LODO, split)",
                                   description="Evaluate a method under a protocol; per-fold predictions are "
                                   "written as they are produced (MEGC log, CSV, JSON) and an interrupted run "
                                   "resumes at the next fold.")
    add_sample_arguments(parser)
    parser.add_argument("--method", default="micronbert", choices=list(METHODS),
                        help="micronbert: μ-BERT from its pre-trained weights (--weights or the configuration); "
                             "vit-scratch: the same network from random initialisation; ststnet: STSTNet on "
                             "onset-apex optical flow; framediff: a linear classifier on the grey frame difference; "
                             "flowgrid: a linear classifier on the onset-apex optical flow averaged per grid cell "
                             "(default: micronbert)")
    parser.add_argument("--protocol", default="loso", choices=PROTOCOLS,
                        help="loso: leave one subject out; megc2019: the MEGC 2019 composite, subjects "
                             "namespaced by dataset; lodo: leave one dataset out; split: train on all but "
                             "--test-subjects (default: loso)")
    parser.add_argument("--test-subjects", help="comma-separated namespaced subjects for --protocol split")
    parser.add_argument("--out", required=True, help="report folder (re-use it to resume)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_evaluate)
    return parser
