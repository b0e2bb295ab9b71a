"""The full demo (``micronbert demo``, ``make demo``): synthetic data → pre-training → LOSO → report.

1. ``data/``: a synthetic CASME II-like labelled tree and unlabeled videos (:mod:`micronbert.data.synthetic`).
2. ``pretrain/``: the ``tiny`` model pre-trained on the unlabeled videos (resumable).
3. ``loso/<method>/seed<k>/``: leave-one-subject-out for μ-BERT (pre-trained), the same network from random
   initialisation, STSTNet, LBP-TOP (the MEGC2019 baseline), the frame difference and the cell-averaged optical
   flow, each with several training seeds (resumable per fold). OFF-ApexNet and Dual-Inception, at about 25 s and
   30 s a run here, do not fit the demo's budget; ``methods`` adds them.
4. The report at the top of the folder: ``results.md`` / ``results.json`` (UF1, UAR, accuracy per method as
   mean and min–max over seeds, and whether μ-BERT leads the random ViT and the frame difference by more than
   that spread), ``confusion_matrices.png``, ``training_curves.png`` (pre-training losses against the
   copy-the-input baseline) and ``maps/`` (DMA change map and PoI saliency of a few samples, the true AU regions
   outlined).

Re-running with the same folder and configuration reuses every finished stage; a different configuration
in the same folder is refused.
"""
from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from micronbert.config import Config, merge
from micronbert.data.datasets import get_scheme
from micronbert.data.datasets import load as load_dataset
from micronbert.data.labelled_pairs import LabelledPairs, load_labelled_pairs
from micronbert.data.pretrain_pairs import PretrainDataConfig, build_pretrain_dataset
from micronbert.data.synthetic import SynthConfig, read_clip_masks, write_synthetic_dataset
from micronbert.data.synthetic.writers import CASME2_DIR, UNLABELED_DIR
from micronbert.diagnostics import pair_maps, reconstruction_on_dataset, region_mass_shares
from micronbert.evaluation.methods import METHODS
from micronbert.evaluation.runner import evaluate
from micronbert.io import check_positive_int, claim_folder, write_json_atomically, write_text_atomically
from micronbert.model import MicronBERT, ModelInitConfig, load
from micronbert.train.finetune import FinetuneConfig
from micronbert.train.pretrain import PretrainConfig, pretrain, read_metrics
from micronbert.viz import (
    confusion_grid_figure,
    pair_maps_figure,
    patch_map_to_image,
    save_figure_atomically,
    training_curves_figure,
)

SCHEME = "megc2019-3class"
SYNTH_CLASSES = ("negative", "positive", "surprise")
PRETRAINED = "micronbert"
FPS = 200
# Recognition budget of the demo: frozen encoder and DMA, the head trained for a fixed 100 epochs per fold. Training
# DMA + head too memorises the 90 training pairs of a fold within about 40 epochs and makes the scores chaotic
# (docs/FINDINGS.md §1); 20 epochs leave both ViTs near chance on this data.
DEMO_FINETUNE = {"train": {"mode": "frozen", "frozen_train": "head", "epochs": 100}, "optim": {"lr": 3e-3}}
PRETRAIN_MIN_LR = 1e-5  # end of the cosine schedule
# The warp-motion pretext and the motion head (METHOD.md §10) and the residual decoder (METHOD.md §7);
# `model: {overrides: {}}` runs the paper's method alone.
DEMO_MODEL = {"motion_weight": 1.0, "head": "motion", "decoder_residual": True}
# What the demo claims pre-trained μ-BERT beats (issue 4): the same ViT from random weights, and a naive method.
CLAIM_AGAINST = ("vit-scratch", "framediff")


@dataclass(frozen=True)
class DemoDataConfig(Config):
    """The synthetic data: ``subjects`` × ``clips_per_subject`` labelled clips in the classes of ``SCHEME``, apex
    displacement ``amplitude`` (fraction of the face width), nuisances at ``nuisance_strength``, frames of ``size``
    px; ``unlabeled_videos`` videos of ``unlabeled_frames`` frames for pre-training."""

    subjects: int = 10
    clips_per_subject: int = 10
    size: int = 64
    amplitude: tuple[float, float] = (0.02, 0.05)
    nuisance_strength: float = 1.0
    unlabeled_videos: int = 10
    unlabeled_frames: int = 300

    def __post_init__(self) -> None:
        for name in ("subjects", "clips_per_subject", "unlabeled_videos"):
            check_positive_int(f"data.{name}", getattr(self, name))
        if self.subjects < 2:
            raise ValueError(f"leave-one-subject-out needs at least 2 subjects, got {self.subjects}")


@dataclass(frozen=True)
class DemoPretrainConfig(Config):
    """Pre-training: ``steps`` steps of ``batch`` pairs, the learning rate peaking at ``lr``."""

    steps: int = 1500
    batch: int = 32
    lr: float = 1e-3

    def __post_init__(self) -> None:
        check_positive_int("pretrain.steps", self.steps)
        check_positive_int("pretrain.batch", self.batch)
        if not PRETRAIN_MIN_LR <= self.lr < 1:
            raise ValueError(f"pretrain.lr must lie in [{PRETRAIN_MIN_LR}, 1) (the schedule decays to "
                             f"{PRETRAIN_MIN_LR}), got {self.lr!r}")


@dataclass(frozen=True)
class DemoConfig(Config):
    """What the demo generates and runs; the defaults finish in a few minutes on 2 CPU cores.

    ``seed``: of the data and the pre-training. ``data``, ``pretrain``: see their classes. ``model``: the network
    pre-trained and used by both ViTs in recognition (default: ``tiny`` with micronbert's warp-motion pretext and
    motion head, METHOD.md §10, and residual decoder, §7; ``overrides: {}`` for the paper's method alone; no
    ``weights``: the demo pre-trains its own). Recognition: ``methods`` under LOSO, each trained once per seed in
    ``seeds``, with ``finetune`` changing :class:`~micronbert.train.finetune.FinetuneConfig` sections (as a
    recognition YAML would); the verdict says whether μ-BERT leads those of ``methods`` named in ``claim_against``
    (the leads over the others are reported too). ``maps``: samples drawn.
    """

    seed: int = 0
    data: DemoDataConfig = field(default_factory=DemoDataConfig)
    model: ModelInitConfig = field(default_factory=lambda: ModelInitConfig("tiny", dict(DEMO_MODEL)))
    pretrain: DemoPretrainConfig = field(default_factory=DemoPretrainConfig)
    methods: tuple[str, ...] = ("micronbert", "vit-scratch", "ststnet", "lbptop", "framediff", "flowgrid")
    claim_against: tuple[str, ...] = CLAIM_AGAINST
    seeds: tuple[int, ...] = (0, 1, 2)
    finetune: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(DEMO_FINETUNE)))
    maps: int = 3

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {', '.join(METHODS)}; got {list(self.methods)}")
        if not set(self.claim_against) <= set(METHODS) - {PRETRAINED} or not self.claim_against:
            raise ValueError(f"claim_against must name at least one method other than {PRETRAINED} "
                             f"(of {', '.join(METHODS)}); got {list(self.claim_against)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if self.maps < 0:
            raise ValueError(f"maps must be >= 0, got {self.maps}")
        if self.model.weights is not None:
            raise ValueError("model.weights: the demo pre-trains its own model; give a name and overrides only")
        owned = [key for key, section in (("model", None), ("train", "seed"), ("cache", "dir"))
                 if key in self.finetune and (section is None or section in (self.finetune[key] or {}))]
        if owned:
            raise ValueError(f"finetune: {', '.join(owned)} are set by the demo itself")
        self.finetune_config(0)
        self.synth_config()

    def synth_config(self) -> SynthConfig:
        """The synthetic dataset this demo generates."""
        data = self.data
        return SynthConfig(seed=self.seed, subjects=data.subjects, clips_per_subject=data.clips_per_subject,
                           classes=SYNTH_CLASSES, amplitude=data.amplitude, nuisance_strength=data.nuisance_strength,
                           size=data.size, fps=FPS, unlabeled_videos=data.unlabeled_videos,
                           unlabeled_frames=data.unlabeled_frames, write_mp4=False)

    def finetune_config(self, seed: int, weights: str | None = None, cache_dir: str | None = None) -> FinetuneConfig:
        """The recognition configuration of one training seed."""
        owned = {"model": {**self.model.to_dict(), "weights": weights}, "train": {"seed": seed},
                 "cache": {"dir": cache_dir}}
        return FinetuneConfig.from_dict(merge(self.finetune, owned), "finetune")

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """A run of well under a minute that exercises every stage (tests, trying the command out)."""
        return cls.from_dict(QUICK | {"seed": seed})


# A run of well under a minute that exercises every stage.
QUICK: dict[str, Any] = {
    "data": {"subjects": 3, "clips_per_subject": 6, "unlabeled_videos": 2, "unlabeled_frames": 80},
    "pretrain": {"steps": 20, "batch": 16, "lr": 2e-3}, "seeds": [0, 1], "maps": 2,
    "finetune": {"train": {"epochs": 3}, "baselines": {"recipes": {"ststnet": {"epochs": 3}}}},
}


@dataclass
class DemoResult:
    """What the demo measured and where it wrote it."""

    out_dir: Path
    rows: list[dict[str, Any]]
    verdict: dict[str, Any]
    pretraining: dict[str, Any]
    timings: dict[str, float]
    report: Path


# ------------------------------------------------------------------------------------------- stages
def _synthetic_data(folder: Path, config: DemoConfig) -> Path:
    if not (folder / "synth_config.json").is_file():
        write_synthetic_dataset(folder, config.synth_config())
    return folder


def _pretrain_config(folder: Path, frames: Path, config: DemoConfig, progress: bool) -> PretrainConfig:
    steps = config.pretrain.steps
    return PretrainConfig.from_dict({
        "model": config.model.to_dict(),
        "data": {"sources": [str(frames)], "folder_fps": FPS, "cache_dir": str(folder / "frame_cache")},
        "optim": {"lr": config.pretrain.lr, "min_lr": PRETRAIN_MIN_LR, "warmup_steps": min(50, max(1, steps // 10))},
        "train": {"steps": steps, "global_batch": config.pretrain.batch, "seed": config.seed, "device": "auto",
                  "out_dir": str(folder), "log_every": max(1, min(25, steps // 20)),
                  "checkpoint_every": max(1, steps // 4), "preview_every": steps, "keep_last": 1,
                  "progress": progress}})


def _pretrained_model(folder: Path, frames: Path, config: DemoConfig, progress: bool) -> Path:
    if not (folder / "summary.json").is_file():
        pretrain(_pretrain_config(folder, frames, config, progress), resume=True)
    return folder / "model"


def labelled_table(casme2_root: Path) -> pd.DataFrame:
    """The labelled samples of the demo's synthetic CASME II tree under the demo's class scheme."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic sheet has no fear/sadness rows to exclude
        table = load_dataset("casme2", casme2_root, scheme=SCHEME)
    return table[table["label"].notna()].reset_index(drop=True)


def _recognition(folder: Path, table: pd.DataFrame, classes: list[str], weights: Path, config: DemoConfig,
                 log: Callable[[str], None]) -> list[dict[str, Any]]:
    runs = []
    for method in config.methods:
        for seed in config.seeds:
            finetune = config.finetune_config(seed, str(weights), str(folder / "token_cache"))
            result = evaluate(table, method, finetune, folder / method / f"seed{seed}", classes)
            metrics = result.metrics
            runs.append({"method": method, "seed": seed, "uf1": metrics["uf1"], "uar": metrics["uar"],
                         "accuracy": metrics["accuracy"], "confusion_matrix": metrics["confusion_matrix"],
                         "seconds": result.timings["total_s"]})
            log(f"{method:12s} seed {seed}: UF1 {metrics['uf1']:.3f}  UAR {metrics['uar']:.3f}  "
                f"accuracy {metrics['accuracy']:.3f}")
    return runs


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method: mean, min and max over seeds of UF1, UAR and accuracy; summed confusion matrix."""
    rows = []
    for method in dict.fromkeys(run["method"] for run in runs):
        mine = [run for run in runs if run["method"] == method]
        row: dict[str, Any] = {"method": method, "seeds": [run["seed"] for run in mine]}
        for metric in ("uf1", "uar", "accuracy"):
            values = np.array([run[metric] for run in mine])
            row[metric] = {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
                           "values": values.tolist()}
        row["confusion_matrix"] = np.sum([run["confusion_matrix"] for run in mine], axis=0).tolist()
        row["seconds_per_run"] = float(np.mean([run["seconds"] for run in mine]))
        rows.append(row)
    return rows


def verdict(rows: list[dict[str, Any]], metric: str = "uf1", against: Sequence[str] | None = None) -> dict[str, Any]:
    """Whether pre-trained μ-BERT's mean leads the mean of each method in ``against`` (default: every other method)
    by more than the larger of the two methods' min–max spreads over seeds (``ahead``). Leads and margins are
    given for every other method. ``ahead_of_largest_spread`` applies a stricter test: the lead over the best
    method in ``against`` compared with the largest spread of μ-BERT and those methods."""
    by_method = {row["method"]: row[metric] for row in rows}
    others = {name: values for name, values in by_method.items() if name != PRETRAINED}
    targets = [name for name in others if against is None or name in against]
    if PRETRAINED not in by_method or not targets:
        return {"metric": metric, "compared": False}
    runner_up = max(targets, key=lambda name: others[name]["mean"])
    spreads = {name: float(values["max"] - values["min"]) for name, values in by_method.items()}
    leads = {name: float(by_method[PRETRAINED]["mean"] - values["mean"]) for name, values in others.items()}
    margins = {name: max(spreads[PRETRAINED], spreads[name]) for name in others}
    ahead_of = {name: bool(leads[name] > margins[name]) for name in others}
    largest = max(spreads[name] for name in (PRETRAINED, *targets))
    return {"metric": metric, "compared": True, "against": targets, "runner_up": runner_up,
            "lead": leads[runner_up], "leads": leads, "margins": margins, "ahead_of": ahead_of,
            "ahead": all(ahead_of[name] for name in targets), "largest_spread": largest,
            "ahead_of_largest_spread": bool(leads[runner_up] > largest)}


# ------------------------------------------------------------------------------------------- report
def _reconstruction_check(frames: Path, model: MicronBERT, config: DemoConfig, folder: Path) -> dict[str, float]:
    dataset, _ = build_pretrain_dataset(PretrainDataConfig(sources=[str(frames)], folder_fps=FPS,
                                                   cache_dir=str(folder / "frame_cache")),
                                    model.config.img_size, seed=config.seed + 99)
    return reconstruction_on_dataset(model, dataset)


def _shares(before: dict, after: dict, region: str, kind: str) -> dict[str, float]:
    return {"before": before[region][kind], "after": after[region][kind], "area_share": after[region]["area"]}


def _map_figures(folder: Path, model: MicronBERT, table: pd.DataFrame, pairs: LabelledPairs, masks: list[np.ndarray],
                 classes: list[str], count: int) -> list[str]:
    chosen = []
    for label in range(len(classes)):
        chosen += [int(i) for i in np.flatnonzero(pairs.labels == label)[:1]]
    chosen = chosen[:count]
    maps = pair_maps(model, pairs.onsets[chosen], pairs.apexes[chosen])
    size, grid = model.config.img_size, model.config.grid_size
    paths = []
    for position, index in enumerate(chosen):
        row = table.iloc[int(pairs.rows[index])]
        name = f"{str(row['subject']).split('/')[-1]}_{row['clip']}"
        image = {kind: patch_map_to_image(values[position], grid, grid, size, size) for kind, values in maps.items()}
        figure = pair_maps_figure(pairs.onsets[index], pairs.apexes[index], image["change"], image["saliency"],
                                  title=f"{name} ({classes[int(pairs.labels[index])]}): pre-trained μ-BERT; "
                                  "true AU regions outlined", truth=masks[index],
                                  relative_change=image["relative_change"], surprise=image.get("surprise"))
        paths.append(str(save_figure_atomically(figure, folder / f"{name}.png")))
    return paths


def _curves_figure(pretrain_dir: Path, copy_loss: float, path: Path) -> Path:
    figure = training_curves_figure(read_metrics(pretrain_dir / "metrics.jsonl"),
                                    "pre-training of tiny on synthetic unlabeled video", copy_baseline=copy_loss)
    return save_figure_atomically(figure, path)


def _confusion_figure(rows: list[dict[str, Any]], classes: list[str], path: Path) -> Path:
    figure = confusion_grid_figure([row["confusion_matrix"] for row in rows], [row["method"] for row in rows], classes,
                                   f"leave-one-subject-out confusion matrices, summed over {len(rows[0]['seeds'])} "
                                   "seeds")
    return save_figure_atomically(figure, path)


def _format(values: dict[str, Any]) -> str:
    return f"{values['mean']:.3f} ({values['min']:.3f}–{values['max']:.3f})"


def _verdict_line(item: dict[str, Any]) -> str:
    targets = " and ".join(item["against"])
    each = ", ".join(f"{name} {lead:+.3f} against {item['margins'][name]:.3f}"
                     f"{'' if item['ahead_of'][name] else ' (NOT ahead)'}" for name, lead in item["leads"].items())
    status = "ahead" if item["ahead"] else "NOT ahead"
    strict = "also" if item["ahead_of_largest_spread"] else "NOT"
    return (f"- {item['metric'].upper()}: pre-trained μ-BERT is {status} of {targets} (the demo's claim) by more "
            f"than the larger seed spread of the two methods compared. Lead over each method against that spread: "
            f"{each}. Its lead over the best of {targets} ({item['runner_up']}, {item['lead']:+.3f}) is {strict} "
            f"larger than the largest spread among μ-BERT and them ({item['largest_spread']:.3f}).")


def results_markdown(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]], pretraining: dict[str, Any],
                     config: DemoConfig, samples: int, classes: list[str], seconds: float) -> str:
    """The demo's report in Markdown."""
    low, high = config.data.amplitude
    lines = ["# micronbert demo: synthetic leave-one-subject-out", "",
             f"{samples} synthetic samples of {config.data.subjects} subjects, classes {', '.join(classes)} "
             f"(scheme {SCHEME}); apex displacement {low:.1%}–{high:.1%} of the face width; each method trained with "
             f"seeds {list(config.seeds)}. Values: mean (min–max) over seeds.",
             "", "| method | UF1 | UAR | accuracy | s per LOSO run |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['method']} | {_format(row['uf1'])} | {_format(row['uar'])} | "
                     f"{_format(row['accuracy'])} | {row['seconds_per_run']:.1f} |")
    lines.append("")
    for item in verdicts:
        if item["compared"]:
            lines.append(_verdict_line(item))
    rec = pretraining["reconstruction"]
    shares, face = pretraining["change_map_on_au_regions"], pretraining["saliency_on_face"]
    relative = pretraining["relative_change_map_on_au_regions"]
    lines += ["", "## Pre-training", "",
              f"- {pretraining['steps']} steps of {config.pretrain.batch} pairs in {pretraining['seconds']:.0f} s.",
              f"- Reconstruction loss on 64 pairs of the videos: {rec['rec_loss']:.4f}; copying the swapped "
              f"input gives {rec['copy_baseline_loss']:.4f}.",
              f"- Share of the DMA change map's mass on the true AU regions of the labelled (onset, apex) pairs "
              f"(they cover {shares['area_share']:.1%} of the patches): {shares['before']:.1%} with random "
              f"weights, {shares['after']:.1%} after pre-training; of the relative change map (the drop of each "
              f"patch's DMA self-match against the onset compared with itself): {relative['before']:.1%} and "
              f"{relative['after']:.1%}.",
              *_surprise_lines(pretraining),
              f"- Share of the PoI saliency's mass on the face (it covers {face['area_share']:.1%} of the patches): "
              f"{face['before']:.1%} with random weights, {face['after']:.1%} after pre-training.",
              "", "Figures: `confusion_matrices.png`, `training_curves.png`, `maps/`.",
              "", f"Total time: {seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def _surprise_lines(pretraining: dict[str, Any]) -> list[str]:
    surprise = pretraining.get("surprise_map_on_au_regions")
    if surprise is None:
        return []
    return [f"- The same for the surprise map (the relative change map weighted by the volatility, METHOD.md "
            f"§11): {surprise['before']:.1%} and {surprise['after']:.1%}."]


# ---------------------------------------------------------------------------------------------- run
def run_demo(out_dir: str | Path = "demo_out", config: DemoConfig | None = None, progress: bool = True,
             log: Callable[[str], None] = print) -> DemoResult:
    """Run every stage (reusing finished ones in ``out_dir``) and write the report."""
    config = config or DemoConfig()
    out = Path(out_dir)
    claim_folder(out / "demo.json", config.to_dict(), "demo run")
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str, work: Callable[[], Any]) -> Any:
        begin = time.perf_counter()
        log(f"[demo] {name}")
        value = work()
        timings[name] = round(time.perf_counter() - begin, 1)
        return value

    data = stage("synthetic data", lambda: _synthetic_data(out / "data", config))
    frames = data / UNLABELED_DIR / "frames"
    model_dir = stage("pre-training", lambda: _pretrained_model(out / "pretrain", frames, config, progress))
    table = labelled_table(data / CASME2_DIR)
    classes = list(get_scheme(SCHEME).classes)
    runs = stage("leave-one-subject-out", lambda: _recognition(out / "loso", table, classes, model_dir, config, log))
    rows = summarise(runs)
    verdicts = [verdict(rows, metric, config.claim_against) for metric in ("uf1", "uar")]

    def report() -> dict[str, Any]:
        pretrained = load(model_dir)
        torch.manual_seed(config.seed)
        untrained = config.model.build()
        pairs = load_labelled_pairs(table, pretrained.config.img_size)
        regions = {name: read_clip_masks(data / CASME2_DIR, table.iloc[pairs.rows], pretrained.config.img_size, column)
                   for name, column in (("au", "mask"), ("face", "face_mask"))}
        before = region_mass_shares(untrained, pairs.onsets, pairs.apexes, regions)
        after = region_mass_shares(pretrained, pairs.onsets, pairs.apexes, regions)
        summary = json.loads((out / "pretrain" / "summary.json").read_text())
        rec = _reconstruction_check(frames, pretrained, config, out / "pretrain")
        pretraining = {"steps": summary["steps"], "seconds": summary["seconds"], "reconstruction": rec,
                       "change_map_on_au_regions": _shares(before, after, "au", "change"),
                       "relative_change_map_on_au_regions": _shares(before, after, "au", "relative_change"),
                       "saliency_on_face": _shares(before, after, "face", "saliency")}
        if "surprise" in after["au"]:
            pretraining["surprise_map_on_au_regions"] = _shares(before, after, "au", "surprise")
        maps = _map_figures(out / "maps", pretrained, table, pairs, regions["au"], classes, config.maps)
        _confusion_figure(rows, classes, out / "confusion_matrices.png")
        _curves_figure(out / "pretrain", rec["copy_baseline_loss"], out / "training_curves.png")
        return {"pretraining": pretraining, "maps": maps, "samples": len(pairs)}

    drawn = stage("report", report)
    timings["total"] = round(time.perf_counter() - started, 1)
    write_json_atomically(out / "results.json", {
        "config": config.to_dict(), "classes": classes, "samples": drawn["samples"], "methods": rows,
        "runs": runs, "verdict": verdicts, "pretraining": drawn["pretraining"], "maps": drawn["maps"],
        "timings": timings})
    report_path = write_text_atomically(out / "results.md", results_markdown(
        rows, verdicts, drawn["pretraining"], config, drawn["samples"], classes, timings["total"]))
    return DemoResult(out, rows, verdicts[0], drawn["pretraining"], timings, Path(report_path))
