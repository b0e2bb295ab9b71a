"""Spotting evaluation on long-video datasets (``micronbert spot-eval``) and its synthetic demonstration
(``micronbert spot-demo``); see docs/SPOTTING.md.

:func:`evaluate_spotting` runs, for one or more datasets (name and root: the annotation sheet and the frame folders
below it) and one or more spotters, leave-one-subject-out spotting (:func:`~micronbert.spotting.spot_loso`: every
subject's videos are spotted by a spotter fitted on the other subjects only), scores the predictions per dataset and
pooled over the datasets with the MEGC2020 rule and with one-to-one matching (docs/SPOTTING.md) and,
given a recognition method, the spot-then-recognise score STRS of each dataset whose micro-expressions carry emotions
(:mod:`micronbert.spotting.recognise`). Every video is tracked and read once per frame distance: one
:class:`~micronbert.spotting.SignalCache` per spotter, and the tracked crops of a video kept in memory while they fit
in ``crop_memory_mb`` (else tracked again).

Files written into the output folder, each atomically: ``spotting_scores.csv`` (spotter, rule, dataset, type,
counts, P, R, F1), per spotter ``predictions_<spotter>.csv`` (MEGC2023 CSV ``vid,onset,offset,type``),
``predictions_<spotter>_full.csv`` (dataset, subject, video, onset, apex, offset, type, score), and
``fold_settings_<spotter>.csv`` (each fold's class durations, apex positions and threshold factors), with STR
``str_predictions_<spotter>.csv`` (the STR CSV ``subject,video,onset,offset,emotion``) and ``str_scores.csv``;
``report.md`` (readable tables) and ``results.json`` (everything).

Resuming: each video's signal is written to ``signals/`` as soon as it is computed (with what tracking found in the
video), so a run interrupted after hours starts again, into the same folder with the same settings, at the first
video it had not finished; the report says how many signals it read back. Other settings (spotter, tracking, frame
folders, model weights) never read those files.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from micronbert.config import Config
from micronbert.data.faces import FaceBackend, FaceTrackConfig
from micronbert.data.synthetic import LongVideoConfig, write_long_videos
from micronbert.data.synthetic.long import CONFIG_FILE as LONG_VIDEO_CONFIG_FILE
from micronbert.evaluation.methods import canonical_method_name
from micronbert.io import read_json_mapping, write_json_atomically, write_text_atomically
from micronbert.spotting.formats import write_megc_csv, write_str_csv
from micronbert.spotting.intervals import get_spotting_dataset, read_intervals_with_report
from micronbert.spotting.metric import POOLED, RULES, SpottingCounts, scores_table, spotting_scores_by_dataset
from micronbert.spotting.recognise import StrEvaluation, spot_then_recognise, str_classes
from micronbert.spotting.recording import tracking_for
from micronbert.spotting.signals import temporal_stride
from micronbert.spotting.spotters import (
    FlowRoiConfig,
    LosoSpotting,
    MicronBertSpotter,
    MicronBertSpotterConfig,
    SignalCache,
    Spotter,
    SpotVideo,
    available_spotters,
    get_spotter,
    spot_loso,
)
from micronbert.spotting.videos import CropMemory, FolderFrames, dataset_videos
from micronbert.train.finetune import FinetuneConfig

PREDICTION_FILE_COLUMNS: tuple[str, ...] = ("dataset", "subject", "video", "onset", "apex", "offset", "type", "score")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


# --- configuration -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpotDataset(Config):
    """A dataset to spot: its reader ``name`` (``casme_sq``, ``samm_lv``, ``casme3``), the ``root`` holding its
    annotation sheet, and ``frames``, the folder below which its frame folders lie (None: ``root``)."""

    name: str = "casme_sq"
    root: str = ""
    frames: str | None = None

    def __post_init__(self) -> None:
        if not self.root:
            raise ValueError(f"dataset {self.name}: root is empty")

    @property
    def frame_root(self) -> str:
        """Where the frame folders are looked for."""
        return self.frames or self.root


@dataclass(frozen=True)
class SpotEvalConfig(Config):
    """``micronbert spot-eval``: the ``datasets``, the ``spotters`` (names) with the options of each (``flow_roi``,
    ``micronbert``: a pre-trained model folder in ``micronbert.model.weights``), the face ``track`` (its crop geometry
    is taken from each spotter), and optionally spot-then-recognise with the recognition method ``recognise``, its
    ``recognition`` configuration and an ``emotions`` mapping to classes (empty: the annotated emotions).
    ``crop_memory_mb``: memory for the tracked crops of whole videos (0: track every pass anew). ``seed``: the seed
    from which a model without weights is initialised (the same random micronbert spotter in every run)."""

    datasets: tuple[SpotDataset, ...] = ()
    spotters: tuple[str, ...] = ("flow-roi",)
    flow_roi: FlowRoiConfig = field(default_factory=FlowRoiConfig)
    micronbert: MicronBertSpotterConfig = field(default_factory=MicronBertSpotterConfig)
    track: FaceTrackConfig = field(default_factory=FaceTrackConfig)
    recognise: str | None = None
    recognition: FinetuneConfig = field(default_factory=FinetuneConfig)
    emotions: dict[str, str] = field(default_factory=dict)
    crop_memory_mb: float = 1024.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [name for name in self.spotters if name not in available_spotters()]
        if not self.spotters or unknown or len(set(self.spotters)) != len(self.spotters):
            raise ValueError(f"spotters must be distinct names from {available_spotters()}, got {list(self.spotters)}")
        names = [dataset.name for dataset in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"a dataset is given twice: {names}")
        if self.crop_memory_mb < 0:
            raise ValueError(f"crop_memory_mb must be >= 0, got {self.crop_memory_mb}")
        if self.recognise is not None:
            canonical_method_name(self.recognise)

    def build_spotters(self) -> list[Spotter]:
        """The configured spotters, in order; a μ-BERT model is built now, from ``seed`` when it has no weights."""
        sections = {"flow-roi": self.flow_roi, "micronbert": self.micronbert}
        spotters = [get_spotter(name, sections.get(name)) for name in self.spotters]
        for spotter in spotters:
            if isinstance(spotter, MicronBertSpotter):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed)
                    spotter.model  # noqa: B018 -- the property builds the model (on its device) under this seed
        return spotters


# --- the evaluation ----------------------------------------------------------------------------------------------


@dataclass
class SpotEvaluation:
    """What :func:`evaluate_spotting` found: per spotter its LOSO ``predictions`` and fold ``settings``, its
    ``scores`` (rule -> dataset or ``pooled`` -> class -> counts) and its STR result (``recognition``; absent
    without a method or a dataset with emotions), plus the annotated ``truth``, the ``tracking`` facts of every video,
    the ``warnings`` and ``notes`` of the report and the run time in ``seconds``."""

    out_dir: Path
    predictions: dict[str, pd.DataFrame]
    settings: dict[str, pd.DataFrame]
    scores: dict[str, dict[str, dict[str, dict[str, SpottingCounts]]]]
    recognition: dict[str, StrEvaluation]
    truth: pd.DataFrame
    tracking: list[dict[str, Any]]
    warnings: list[str]
    notes: list[str]
    seconds: float = 0.0

    @property
    def report(self) -> Path:
        """The readable report."""
        return self.out_dir / "report.md"


SIGNALS_DIR = "signals"
TRACKING_FACTS = "tracking_facts.json"


def evaluate_spotting(
    datasets: Sequence[SpotDataset | tuple[str, str | Path]],
    spotters: Sequence[Spotter],
    out_dir: str | Path,
    *,
    track: FaceTrackConfig | None = None,
    recognise: str | Callable[[FinetuneConfig, int], Any] | None = None,
    recognition: FinetuneConfig | None = None,
    emotions: Mapping[str, str] | None = None,
    crop_memory_mb: float = 1024.0,
    notes: Sequence[str] = (),
    progress: bool = False,
    backend: FaceBackend | None = None,
) -> SpotEvaluation:
    """Leave-one-subject-out spotting of ``datasets`` by each of ``spotters``, scored per dataset and pooled, with
    optional spot-then-recognise by the recognition method ``recognise`` (a name or a method factory); writes the
    files of the module docstring into ``out_dir``. ``notes`` are added to the report; ``backend`` replaces the face
    backend of ``track``. Raises FileNotFoundError / ValueError naming the dataset, folder or sheet at fault."""
    started = time.perf_counter()
    specs = [_dataset_spec(item) for item in datasets]
    named = _named_spotters(spotters)
    if not specs:
        raise ValueError("no dataset to spot: give at least one (name, root)")
    if len({spec.name for spec in specs}) != len(specs):
        raise ValueError(f"a dataset is given twice: {[spec.name for spec in specs]}")
    track = track if track is not None else FaceTrackConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    warnings = [_random_model_warning(name) for name, spotter in named.items() if _random_micronbert(spotter)]
    truths, report_notes = _read_truths(specs)
    memory = CropMemory(crop_memory_mb)
    videos = _Videos(specs, truths, track, memory, backend, progress, out / SIGNALS_DIR / TRACKING_FACTS)
    predictions, settings, scores, recognised = {}, {}, {}, {}
    str_notes: list[str] = []
    truth = pd.concat(truths.values(), ignore_index=True)
    for name, spotter in named.items():
        cache = SignalCache(out / SIGNALS_DIR, scope=videos.scope(spotter))
        loso = []
        for spec in tqdm(specs, desc=f"spotting ({name})", unit="dataset", disable=not progress):
            result = spot_loso(videos.of(spec, spotter), truths[spec.name], spotter, cache)
            loso.append((spec.name, result))
        if cache.read_from_disk:
            report_notes.append(f"{name}: the signals of {len(cache.read_from_disk)} video(s) were read from "
                                f"{SIGNALS_DIR}/, computed by an earlier run with the same settings (delete it to "
                                "compute them again)")
        predictions[name] = _combined(loso, "predictions")
        settings[name] = _combined(loso, "settings")
        scores[name] = {rule: spotting_scores_by_dataset(predictions[name], truth, rule) for rule in RULES}
        if recognise is not None:
            result, left_out = _recognise(predictions[name], truths, videos.folders, recognise,
                                          recognition or FinetuneConfig(), emotions, progress)
            str_notes += [note for note in left_out if note not in str_notes]
            if result is not None:
                recognised[name] = result
                warnings += [warning for warning in result.warnings if warning not in warnings]
    evaluation = SpotEvaluation(out, predictions, settings, scores, recognised, truth, videos.facts(), warnings,
                                [*notes, *report_notes, *str_notes, *videos.notes()], time.perf_counter() - started)
    _write(evaluation, specs, named, recognise)
    return evaluation


def run_spot_eval(config: SpotEvalConfig, out_dir: str | Path, progress: bool = False, notes: Sequence[str] = (),
                  backend: FaceBackend | None = None) -> SpotEvaluation:
    """:func:`evaluate_spotting` as ``config`` describes it."""
    return evaluate_spotting(config.datasets, config.build_spotters(), out_dir, track=config.track,
                             recognise=config.recognise, recognition=config.recognition, emotions=config.emotions,
                             crop_memory_mb=config.crop_memory_mb, notes=notes, progress=progress, backend=backend)


def _dataset_spec(item: SpotDataset | tuple[str, str | Path]) -> SpotDataset:
    if isinstance(item, SpotDataset):
        return item
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"a dataset is a SpotDataset or a (name, root) pair, got {item!r}")
    return SpotDataset(str(item[0]), str(item[1]))


def _named_spotters(spotters: Sequence[Spotter]) -> dict[str, Spotter]:
    named: dict[str, Spotter] = {}
    for spotter in spotters:
        if not isinstance(spotter, Spotter):
            raise ValueError(f"expected Spotter instances, got {type(spotter).__name__}")
        if spotter.name in named:
            raise ValueError(f"two spotters are called {spotter.name}: their files would overwrite each other")
        named[spotter.name] = spotter
    if not named:
        raise ValueError("no spotter given")
    return named


def _random_micronbert(spotter: Spotter) -> bool:
    model = getattr(spotter.config, "model", None)
    return spotter.name == "micronbert" and model is not None and not model.weights


def _random_model_warning(name: str) -> str:
    return (f"SPOTTER {name.upper()} HAS NO PRE-TRAINED WEIGHTS: model.weights is empty, so its signal comes from a "
            "RANDOMLY INITIALISED model (unless a trained model object was handed to it). Its scores say nothing "
            "about μ-BERT's pre-training; give --weights to evaluate a pre-trained model.")


def _read_truths(specs: Sequence[SpotDataset]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    truths, notes = {}, []
    for spec in specs:
        table, report = read_intervals_with_report(spec.name, spec.root)
        truths[spec.name] = table
        if report.repairs or report.dropped:
            notes.append(f"{spec.name}: {len(report.repairs)} annotation cells repaired and {len(report.dropped)} "
                         f"rows dropped while reading {report.file.name if report.file else spec.root} "
                         "(see read_intervals_with_report)")
    return truths, notes


class _Videos:
    """The SpotVideos of every dataset, built once per tracking geometry and temporal stride (so that spotters with
    the same ones share the tracked crops in memory)."""

    def __init__(self, specs: Sequence[SpotDataset], truths: Mapping[str, pd.DataFrame], track: FaceTrackConfig,
                 memory: CropMemory, backend: FaceBackend | None, progress: bool, facts_file: Path) -> None:
        self.truths, self.track, self.memory, self.backend, self.progress = truths, track, memory, backend, progress
        self._built: dict[tuple[str, str, int], list[SpotVideo]] = {}
        self.folders: dict[str, dict[str, Path]] = {}
        self._specs = {spec.name: spec for spec in specs}
        self._facts_file = facts_file
        self._saved: dict[str, Any] = (dict(read_json_mapping(facts_file, "tracking facts of an earlier run"))
                                       if facts_file.is_file() else {})

    def of(self, spec: SpotDataset, spotter: Spotter) -> list[SpotVideo]:
        """The videos of ``spec`` tracked with ``spotter``'s crop geometry and read at its stride."""
        config = tracking_for(spotter, self.track)
        stride = temporal_stride(get_spotting_dataset(spec.name).fps, spotter.config.target_fps)
        key = (spec.name, json.dumps(config.to_dict(), sort_keys=True), stride)
        if key not in self._built:
            videos = dataset_videos(spec.name, spec.frame_root, config, self.truths[spec.name], keep_every=stride,
                                    memory=self.memory, backend=self.backend, progress=self.progress,
                                    on_pass=functools.partial(self._save_pass, spec.name))
            self._check_unique(spec.name, videos)
            self._built[key] = videos
            self.folders[spec.name] = {video.video: _frames_of(video).folder for video in videos}
        return self._built[key]

    def _check_unique(self, name: str, videos: Sequence[SpotVideo]) -> None:
        ids = {video.video for video in videos}
        for other, folders in self.folders.items():
            shared = sorted(ids & set(folders)) if other != name else []
            if shared:
                raise ValueError(f"datasets {other} and {name} share video ids {shared[:5]}; spotting scores and "
                                 "signal caches tell videos apart by id")

    def scope(self, spotter: Spotter) -> str:
        """What ``spotter``'s signals depend on besides its signal key: its face tracking and the datasets' frame
        folders (for ``SignalCache``)."""
        return json.dumps({"track": tracking_for(spotter, self.track).to_dict(),
                           "datasets": {name: str(Path(spec.frame_root).resolve())
                                        for name, spec in self._specs.items()}}, sort_keys=True)

    def facts(self) -> list[dict[str, Any]]:
        """Per dataset and video: frames, missing numbers, frames tracked and without a face (last complete pass,
        else the one an earlier run saved with the signals it left)."""
        rows, seen = [], set()
        for (name, _, stride), videos in self._built.items():
            for video in videos:
                if (name, video.video) in seen:
                    continue
                seen.add((name, video.video))
                row = {"dataset": name, "stride": stride, **_frames_of(video).facts()}
                if row["tracked"] is None:
                    row.update(self._saved.get(f"{name}/{video.video}", {}))
                rows.append(row)
        return rows

    def _save_pass(self, name: str, facts: Mapping[str, Any]) -> None:
        """Keep what a complete tracking pass of a video found, on disk too (atomically), for a resumed run."""
        self._saved[f"{name}/{facts['video']}"] = {"tracked": facts["tracked"], "faceless": facts["faceless"]}
        write_json_atomically(self._facts_file, self._saved)

    def notes(self) -> list[str]:
        """Annotated videos without a frame folder (their intervals count as missed), and faceless frames."""
        notes = []
        for name, folders in self.folders.items():
            absent = sorted(set(self.truths[name]["video"]) - set(folders))
            if absent:
                notes.append(f"{name}: {len(absent)} annotated video(s) have no frame folder; their intervals count "
                             f"as missed: {', '.join(absent[:10])}" + (" ..." if len(absent) > 10 else ""))
        for row in self.facts():
            if row["faceless"]:
                notes.append(f"{row['dataset']} {row['video']}: no face in {row['faceless']} of the {row['tracked']} "
                             "frames tracked (nothing can be spotted there)")
            if row["missing_numbers"]:
                notes.append(f"{row['dataset']} {row['video']}: {row['missing_numbers']} frame numbers have no file "
                             "(gaps, read as frames without a face)")
        return notes


def _frames_of(video: SpotVideo) -> FolderFrames:
    assert isinstance(video.frames, FolderFrames)
    return video.frames


def _combined(results: Sequence[tuple[str, LosoSpotting]], part: str) -> pd.DataFrame:
    table = pd.concat([getattr(result, part).assign(dataset=name) for name, result in results], ignore_index=True)
    return table[["dataset", *[column for column in table.columns if column != "dataset"]]]


_SAMM_LV_EMOTIONS = (" (the SAMM-LV sheet has no emotion column: they are read from the SAMM micro-expression sheet, "
                     "SAMM_Micro_FACS_Codes_v2.xlsx, put beside it)")


def _recognise(predictions: pd.DataFrame, truths: Mapping[str, pd.DataFrame], folders: Mapping[str, Mapping],
               method: str | Callable[[FinetuneConfig, int], Any], config: FinetuneConfig,
               emotions: Mapping[str, str] | None, progress: bool) -> tuple[StrEvaluation | None, list[str]]:
    """STR on the datasets whose micro-expressions have at least two emotion classes (None when there is none), and
    a note for each dataset left out."""
    usable = [name for name, truth in truths.items() if len(str_classes(truth, emotions)) >= 2]
    notes = [f"spot-then-recognise left out {name}: its annotated micro-expressions carry fewer than two emotion "
             "classes" + (_SAMM_LV_EMOTIONS if name == "samm_lv" else "") for name in truths if name not in usable]
    if not usable:
        return None, notes
    truth = pd.concat([truths[name] for name in usable], ignore_index=True)
    spotted = predictions[predictions["dataset"].isin(usable)]
    all_folders = {video: folder for name in usable for video, folder in folders.get(name, {}).items()}
    return spot_then_recognise(spotted, truth, all_folders, method, config, emotions, progress=progress), notes


# --- files -------------------------------------------------------------------------------------------------------


def _file_name(spotter: str) -> str:
    return _SAFE_NAME.sub("_", spotter)


def _write(evaluation: SpotEvaluation, specs: Sequence[SpotDataset], spotters: Mapping[str, Spotter],
           recognise: object) -> None:
    out = evaluation.out_dir
    score_rows = [scores_table(by_dataset).assign(spotter=name, rule=rule)
                  for name, by_rule in evaluation.scores.items() for rule, by_dataset in by_rule.items()]
    table = pd.concat(score_rows, ignore_index=True)
    table = table[["spotter", "rule", *[c for c in table.columns if c not in ("spotter", "rule")]]]
    write_text_atomically(out / "spotting_scores.csv", table.to_csv(index=False))
    for name, predictions in evaluation.predictions.items():
        stem = _file_name(name)
        write_megc_csv(out / f"predictions_{stem}.csv", predictions)
        write_text_atomically(out / f"predictions_{stem}_full.csv",
                              predictions[list(PREDICTION_FILE_COLUMNS)].to_csv(index=False))
        write_text_atomically(out / f"fold_settings_{stem}.csv", evaluation.settings[name].to_csv(index=False))
        if name in evaluation.recognition:
            write_str_csv(out / f"str_predictions_{stem}.csv", evaluation.recognition[name].predictions)
    str_rows = [result.scores_table().assign(spotter=name) for name, result in evaluation.recognition.items()]
    if str_rows:
        write_text_atomically(out / "str_scores.csv", pd.concat(str_rows, ignore_index=True).to_csv(index=False))
    write_json_atomically(out / "results.json", _results(evaluation, specs, spotters, recognise))
    write_text_atomically(evaluation.report, report_markdown(evaluation, recognise))


def _results(evaluation: SpotEvaluation, specs: Sequence[SpotDataset], spotters: Mapping[str, Spotter],
             recognise: object) -> dict[str, Any]:
    truth = evaluation.truth
    return {
        "datasets": [{"name": spec.name, "root": spec.root, "frames": spec.frame_root,
                      "intervals": {kind: int(((truth["dataset"] == spec.name) & (truth["type"] == kind)).sum())
                                    for kind in ("micro", "macro")}} for spec in specs],
        "spotters": {name: {"config": spotter.config.to_dict()} for name, spotter in spotters.items()},
        "scores": {name: {rule: {dataset: {kind: counts.as_dict() for kind, counts in by_kind.items()}
                                 for dataset, by_kind in by_dataset.items()}
                          for rule, by_dataset in by_rule.items()} for name, by_rule in evaluation.scores.items()},
        "recognition": None if recognise is None else {
            "method": recognise if isinstance(recognise, str) else getattr(recognise, "name", str(recognise)),
            "classes": {name: result.classes for name, result in evaluation.recognition.items()},
            "scores": {name: {dataset: {rule: value.as_dict() for rule, value in by_rule.items()}
                              for dataset, by_rule in result.scores.items()}
                       for name, result in evaluation.recognition.items()},
            "skipped": {name: [list(item) for item in result.skipped]
                        for name, result in evaluation.recognition.items()},
        },
        "tracking": evaluation.tracking,
        "warnings": evaluation.warnings,
        "notes": evaluation.notes,
        "seconds": evaluation.seconds,
    }


def _f1_cell(counts: SpottingCounts) -> str:
    return f"{counts.f1:.3f} ({counts.tp}/{counts.n_pred}/{counts.n_true})"


def report_markdown(evaluation: SpotEvaluation, recognise: object = None) -> str:
    """The report: warnings, spotting F1 per spotter, rule and dataset (TP / predictions / GT in brackets), STRS, the
    data and the notes."""
    lines = ["# Spotting evaluation", "",
             "Leave-one-subject-out: each subject's videos are spotted by a spotter whose class durations and "
             "thresholds were fitted on the other subjects only (docs/SPOTTING.md). F1 pools TP, predictions and "
             "GT over the videos of a dataset; `pooled` pools the datasets (docs/SPOTTING.md).", ""]
    if evaluation.warnings:
        lines += ["## WARNINGS", "", *[f"- **{warning}**" for warning in evaluation.warnings], ""]
    for rule in RULES:
        lines += [f"## Spotting F1, rule {rule}", "", "F1 (TP/predicted/GT)", "",
                  "| spotter | dataset | micro | macro | overall |", "|---|---|---|---|---|"]
        for name, by_rule in evaluation.scores.items():
            for dataset, by_kind in by_rule[rule].items():
                if dataset == POOLED and len(by_rule[rule]) == 2:
                    continue
                lines.append(f"| {name} | {dataset} | {_f1_cell(by_kind['micro'])} | {_f1_cell(by_kind['macro'])} "
                             f"| {_f1_cell(by_kind['overall'])} |")
        lines.append("")
    if recognise is not None:
        method = recognise if isinstance(recognise, str) else getattr(recognise, "name", str(recognise))
        lines += [f"## Spot-then-recognise (method {method})", "",
                  "Micro-expressions only; STRS = spotting F1 × analysis F1 (docs/SPOTTING.md); rule `strs` is "
                  "the STRS-Metric reference, `one-to-one` counts every GT and matches one to one.", "",
                  "| spotter | dataset | classes | rule | TP/FP/FN | spotting F1 | analysis F1 | UF1 | STRS |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, result in evaluation.recognition.items():
            for dataset, by_rule in result.scores.items():
                for rule, value in by_rule.items():
                    lines.append(f"| {name} | {dataset} | {', '.join(result.classes[dataset])} | {rule} | "
                                 f"{value.tp}/{value.fp}/{value.fn} | {value.spotting_f1:.3f} | "
                                 f"{value.analysis_f1:.3f} | {value.uf1:.3f} | {value.strs:.4f} |")
        lines.append("")
    lines += ["## Data", "", "| dataset | videos | frames | tracked | without a face | micro GT | macro GT |",
              "|---|---|---|---|---|---|---|"]
    truth = evaluation.truth
    for dataset in dict.fromkeys(row["dataset"] for row in evaluation.tracking):
        rows = [row for row in evaluation.tracking if row["dataset"] == dataset]
        counts = {kind: int(((truth["dataset"] == dataset) & (truth["type"] == kind)).sum()) for kind in
                  ("micro", "macro")}
        lines.append(f"| {dataset} | {len(rows)} | {sum(r['frames'] for r in rows)} | "
                     f"{sum(r['tracked'] or 0 for r in rows)} | {sum(r['faceless'] or 0 for r in rows)} | "
                     f"{counts['micro']} | {counts['macro']} |")
    lines.append("")
    if evaluation.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in evaluation.notes], ""]
    lines.append(f"Run time: {evaluation.seconds:.0f} s.")
    return "\n".join(lines) + "\n"


# --- the synthetic demonstration ---------------------------------------------------------------------------------

_DEMO_VIDEOS: dict[str, dict[str, Any]] = {
    "casme_sq": {"layout": "casme_sq", "seed": 2, "subjects": 3, "duration_s": 40.0, "size": 128,
                 "micro_per_minute": 9.0, "macro_per_minute": 6.0, "blinks_per_minute": 6.0,
                 "head_movements_per_minute": 1.5, "write_mp4": False},
    "samm_lv": {"layout": "samm_lv", "seed": 2, "subjects": 3, "duration_s": 10.0, "size": 128,
                "micro_per_minute": 12.0, "macro_per_minute": 6.0, "blinks_per_minute": 6.0,
                "head_movements_per_minute": 0.0, "macro_duration_s": [0.75, 2.0], "write_mp4": False},
}
_DEMO_EVALUATION: dict[str, Any] = {"spotters": ["flow-roi", "micronbert"], "recognise": "flowgrid",
                                    "track": {"size": 112}, "crop_memory_mb": 512.0}
SPOT_DEMO_DEFAULTS: dict[str, Any] = {**_DEMO_VIDEOS, "evaluation": _DEMO_EVALUATION}
# --quick: a run of well under a minute that touches every stage.
SPOT_DEMO_QUICK: dict[str, Any] = {
    "casme_sq": {**_DEMO_VIDEOS["casme_sq"], "subjects": 2, "duration_s": 12.0, "micro_per_minute": 15.0,
                 "macro_per_minute": 5.0, "blinks_per_minute": 5.0, "head_movements_per_minute": 0.0,
                 "macro_duration_s": [0.75, 2.0]},
    "samm_lv": {**_DEMO_VIDEOS["samm_lv"], "subjects": 2, "duration_s": 4.0, "micro_per_minute": 15.0,
                "macro_per_minute": 15.0, "blinks_per_minute": 0.0, "macro_duration_s": [0.6, 1.2],
                "min_gap_s": 0.3},
    "evaluation": _DEMO_EVALUATION,
}
# The OpenCV face cascade finds the synthetic faces of seed 2 at 128 pixels in (nearly) every frame; it misses some
# identities of other seeds, and the first SAMM-LV-like face of seed 2 for seconds at 144 or 160 pixels. Frames
# without a face are reported in the demo's notes.
DEMO_NOTE = ("synthetic demonstration: CAS(ME)^2-like (30 fps) and SAMM-LV-like (200 fps) long videos written by "
             "micronbert.data.synthetic.write_long_videos and read back by the real sheet readers and folder "
             "layouts; the faces are tracked with the configured face backend")


@dataclass(frozen=True)
class SpotDemoConfig(Config):
    """``micronbert spot-demo``: the synthetic long videos of each layout (``casme_sq``, ``samm_lv``: fields of
    :class:`~micronbert.data.synthetic.LongVideoConfig`) and the ``evaluation`` run on them (its ``datasets`` are the
    demo's own). Build it with :meth:`for_run` so that a section given in part keeps the demo's other defaults."""

    casme_sq: LongVideoConfig = field(default_factory=lambda: LongVideoConfig.from_dict(_DEMO_VIDEOS["casme_sq"]))
    samm_lv: LongVideoConfig = field(default_factory=lambda: LongVideoConfig.from_dict(_DEMO_VIDEOS["samm_lv"]))
    evaluation: SpotEvalConfig = field(default_factory=lambda: SpotEvalConfig.from_dict(_DEMO_EVALUATION))

    def __post_init__(self) -> None:
        for name in ("casme_sq", "samm_lv"):
            if getattr(self, name).layout != name:
                raise ValueError(f"{name}.layout must be {name}, got {getattr(self, name).layout!r}")
        if self.evaluation.datasets:
            raise ValueError("evaluation.datasets must be empty: the demo spots the synthetic videos it writes")

    @classmethod
    def for_run(cls, path: str | Path | None = None, overrides: Sequence[str] = (),
                values: Mapping[str, Any] | None = None, quick: bool = False) -> SpotDemoConfig:
        """The demo's defaults (``SPOT_DEMO_QUICK`` with ``quick``), then the YAML file, ``--set`` and ``values``."""
        return cls.from_options(path, overrides, values, base=SPOT_DEMO_QUICK if quick else SPOT_DEMO_DEFAULTS)


def run_spot_demo(out_dir: str | Path, config: SpotDemoConfig | None = None, progress: bool = False,
                  backend: FaceBackend | None = None) -> SpotEvaluation:
    """Write the synthetic long videos under ``out_dir/data`` (reused when already there) and evaluate the spotters
    on them into ``out_dir`` (the report says when the micronbert spotter has no pre-trained weights)."""
    config = config if config is not None else SpotDemoConfig()
    out = Path(out_dir)
    datasets = []
    for name in ("casme_sq", "samm_lv"):
        videos = getattr(config, name)
        root = out / "data" / name
        if not _same_videos(root, videos):
            write_long_videos(root, videos, progress=progress)
        datasets.append(SpotDataset(name, str(root)))
    evaluation = dataclasses.replace(config.evaluation, datasets=tuple(datasets))
    return run_spot_eval(evaluation, out, progress=progress, notes=[DEMO_NOTE], backend=backend)


def _same_videos(root: Path, videos: LongVideoConfig) -> bool:
    """Whether ``root`` already holds the long videos of ``videos`` (its recorded configuration matches)."""
    recorded = root / LONG_VIDEO_CONFIG_FILE
    if not recorded.is_file():
        return False
    if read_json_mapping(recorded, "long-video configuration") != videos.to_dict():
        raise ValueError(f"{root} holds synthetic videos of another configuration; choose another --out or delete it")
    return True
