"""Self-supervised pre-training of μ-BERT (``micronbert pretrain``).

One YAML file configures a run (sections ``model``, ``data``, ``optim``, ``train``; see
``configs/pretrain_tiny.yaml``); ``--set section.key=value`` overrides any field, the value read as YAML::

    micronbert pretrain --config configs/pretrain_tiny.yaml --set data.sources=[clips/] --set optim.lr=1e-4
    micronbert pretrain --config configs/pretrain_tiny.yaml --resume      # continue the run in train.out_dir

The run folder ``train.out_dir`` receives ``config.yaml`` (the resolved configuration),
``data_report.json`` (sources read, problems met), ``metrics.jsonl`` (one line per ``log_every`` steps),
``previews/step_*.png`` (input I_t, swapped I_{t/s}, reconstruction, DMA change map), ``curves.png``
(losses, learning rate, throughput and gradient norm against the step, redrawn at every checkpoint),
``checkpoints/step_*.pt`` (last ``keep_last``) and ``checkpoints/best.pt`` (lowest loss over a checkpoint
interval), and at the end ``model/`` (``micronbert.load``-able) and ``summary.json``.

Resuming is exact: a checkpoint holds the model (EMA teacher included), optimiser, RNG states and the
sampler position, every step's randomness (swap masks, crops) is seeded by (seed, step, chunk) and
every pair by (seed, epoch, index), so an interrupted run resumed from its last checkpoint ends with the
same parameters and logs the same losses as an uninterrupted one.

Several processes (one per GPU, or CPU processes with the gloo backend) run under ``torchrun``; the
global batch ``train.global_batch`` is split evenly over them, gradients are averaged by
DistributedDataParallel, and the result equals one process with the same global batch (with
``train.accum_steps`` = number of processes). Logs, previews and checkpoints come from rank 0 only::

    # one machine, 8 GPUs
    torchrun --standalone --nproc_per_node=8 -m micronbert pretrain --config configs/pretrain_official_small.yaml

    # two machines with 8 GPUs each: run on every machine, with the address of the first as endpoint
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_id=micronbert-run1 \\
        --rdzv_endpoint=node0.example.org:29500 \\
        -m micronbert pretrain --config configs/pretrain_official_small.yaml

Every machine needs the same code, configuration and data paths (a shared file system, or identical
copies); ``--resume`` reads the checkpoint in ``train.out_dir`` on every machine, so keep it on a shared
file system for multi-node runs. ``data.cache_dir`` may be local to each machine or shared. The NCCL
backend is used on GPUs and gloo on CPUs; ``NCCL_SOCKET_IFNAME`` picks the network interface when a
machine has several.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.pairs import (DataReport, FaceCropper, PairDataConfig, PairDataset, PairSampler, build_pair_dataset,
                          normalise_batch)
from ..data.transforms import to_uint8
from ..model import MicronBERT, change_map, create_model, load, reconstruct_images, save
from .checkpointing import latest_checkpoint, load_checkpoint, save_checkpoint, step_checkpoints
from ..io import check_positive_int, write_json_atomically


# ------------------------------------------------------------------------------------------ configuration
@dataclass
class ModelSection:
    """``name`` of a named configuration with field ``overrides``, or ``init``: a ``micronbert.save`` folder
    to start from (its configuration is used and ``name``/``overrides`` are ignored)."""

    name: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    init: str | None = None


@dataclass
class OptimSection:
    """AdamW with linear warm-up then cosine decay to ``min_lr``; ``clip_grad`` 0 turns clipping off.
    Biases, norms and embedding tokens get no weight decay."""

    lr: float = 1.5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    clip_grad: float = 1.0

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"optim: need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.clip_grad < 0:
            raise ValueError("optim: weight_decay, warmup_steps and clip_grad must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")


@dataclass
class TrainSection:
    """Length, batch (global, over all processes), device, precision and output of a run.

    ``accum_steps`` splits each process's share of the global batch into that many chunks whose
    gradients are accumulated; ``device`` is ``auto`` (the local GPU when there is one), ``cpu`` or
    ``cuda``; ``bf16`` turns on bfloat16 autocast on GPUs; ``compile`` uses ``torch.compile``.
    """

    steps: int = 1000
    global_batch: int = 64
    accum_steps: int = 1
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    compile: bool = False
    out_dir: str = "runs/pretrain"
    log_every: int = 10
    checkpoint_every: int = 200
    keep_last: int = 3
    preview_every: int = 200
    preview_images: int = 4
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "global_batch", "accum_steps", "log_every", "checkpoint_every", "keep_last",
                     "preview_every"):
            check_positive_int(f"train.{name}", getattr(self, name))
        if self.checkpoint_every % self.log_every:
            raise ValueError(f"train.checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                             f"train.log_every ({self.log_every})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be auto, cpu or cuda, got {self.device!r}")


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML that also reads ``1e-4`` (no dot) as a float, as users write it."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


# summed per step, logged as interval means
LOSS_KEYS = ("loss", "rec_loss", "agree_loss", "motion_loss", "volatility_loss")
SECTIONS = {"model": ModelSection, "data": PairDataConfig, "optim": OptimSection, "train": TrainSection}


@dataclass
class PretrainConfig:
    """A whole pre-training run: ``model``, ``data``, ``optim`` and ``train`` sections."""

    data: PairDataConfig
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        """Build from nested dicts; unknown sections or keys raise ``ValueError`` naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping of sections, got {type(data).__name__}")
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        return cls(**{name: _section(name, SECTIONS[name], data.get(name) or {}) for name in SECTIONS})

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> PretrainConfig:
        """Read a YAML file and apply ``section.key=value`` overrides."""
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"config file not found: {file}")
        try:
            data = read_yaml(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{file}: not valid YAML ({err})") from None
        try:
            return cls.from_dict(apply_overrides(data, overrides))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{file}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _section(name: str, kind: type, values: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"section {name} must be a mapping, got {values!r}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {name} option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return kind(**values)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with every ``dotted.key=value`` applied (value parsed as YAML: ``1e-4``,
    ``[a, b]``, ``null``, ``true``)."""
    result = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} must read section.key=value")
        try:
            value = read_yaml(text)
        except yaml.YAMLError as err:
            raise ValueError(f"override {item!r}: value is not valid YAML ({err})") from None
        *parents, leaf = key.strip().split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
        node[leaf] = value
    return result


# ------------------------------------------------------------------------------------------ schedule
def learning_rate(step: int, optim: OptimSection, total_steps: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine from ``lr`` to ``min_lr``."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    progress = (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps)
    return optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: torch.nn.Module, optim: OptimSection) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; 1-D tensors (biases, norms) and tokens without decay."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            plain = parameter.ndim <= 1 or name.endswith(("cls_token", "pos_embed"))
            (no_decay if plain else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas)


def chunk_generator(seed: int, step: int, chunk: int, device: torch.device) -> torch.Generator:
    """The generator of one chunk of one step (swap masks, crops): independent of process layout."""
    state = int(np.random.SeedSequence([seed, step, chunk]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


# ------------------------------------------------------------------------------------------ distribution
@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistributedContext:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1), else a single
    process. NCCL on GPUs, gloo on CPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(kind: str, context: DistributedContext) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("train.device is cuda but no GPU is available")
        torch.cuda.set_device(context.local_rank)
        return torch.device("cuda", context.local_rank)
    return torch.device("cpu")


def replica_difference(model: torch.nn.Module) -> float:
    """Largest absolute difference between any process's parameters and rank 0's (0.0 alone)."""
    if not dist.is_initialized():
        return 0.0
    flat = torch.cat([t.detach().float().flatten() for t in model.state_dict().values() if t.is_floating_point()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    difference = (flat - reference).abs().max()
    dist.all_reduce(difference, op=dist.ReduceOp.MAX)
    return float(difference)


# ------------------------------------------------------------------------------------------ outputs
def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` log. A run killed while appending can leave its last line torn: that
    line is left out; a damaged line anywhere else is a ``ValueError`` naming the file and line."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path} line {number}: not a JSON metrics row") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path} line {number}: a metrics row needs an integer 'step'")
        rows.append(row)
    return rows


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the metric rows up to ``last_step`` (a resumed run rewrites what came after its checkpoint)."""
    if not path.is_file():
        return
    kept = [row for row in read_metrics(path) if row["step"] <= last_step]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(json.dumps(row) + "\n" for row in kept))
    os.replace(temporary, path)


def preview_image(model: MicronBERT, frame_t: torch.Tensor, out: dict[str, torch.Tensor],
                  count: int) -> np.ndarray:
    """Rows of (I_t, I_{t/s}, reconstruction, DMA change map) for the first ``count`` samples, RGB uint8."""
    count = min(count, frame_t.shape[0])
    with torch.no_grad():
        recon = reconstruct_images(model, out["pred"][:count].float(), frame_t[:count].float())
        changes = change_map(out["dma_map"][:count].float())
    height, width = frame_t.shape[-2:]
    grid_h, grid_w = height // model.config.patch_size, width // model.config.patch_size
    rows = []
    for index, (first, swapped, rebuilt) in enumerate(zip(to_uint8(frame_t[:count]),
                                                          to_uint8(out["swapped"][:count]), to_uint8(recon))):
        heat = changes[index].reshape(grid_h, grid_w).cpu().numpy()
        heat = (255 * heat / max(float(heat.max()), 1e-12)).astype(np.uint8)
        heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_NEAREST)
        colour = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
        rows.append(np.concatenate([first, swapped, rebuilt, colour], axis=1))
    return np.concatenate(rows, axis=0)


def write_png_atomically(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"could not encode the preview {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(encoded.tobytes())
    os.replace(temporary, path)


# ------------------------------------------------------------------------------------------ training
class Pretrainer:
    """One pre-training run (see the module docstring); :meth:`run` trains and returns the summary."""

    def __init__(self, config: PretrainConfig, context: DistributedContext,
                 cropper: FaceCropper | None = None) -> None:
        self.config, self.context = config, context
        self.train = config.train
        self.device = resolve_device(self.train.device, context)
        self.out_dir = Path(self.train.out_dir)
        self.checkpoints = self.out_dir / "checkpoints"
        self.metrics_path = self.out_dir / "metrics.jsonl"
        torch.manual_seed(self.train.seed)
        self.model = self._build_model().to(self.device)
        self.dataset, self.report = self._build_data(cropper)
        self.sampler = PairSampler(len(self.dataset), self.train.global_batch, context.rank, context.world_size,
                                   self.train.seed)
        if self.sampler.per_rank % self.train.accum_steps:
            raise ValueError(f"train.accum_steps={self.train.accum_steps} does not divide the per-process batch "
                             f"{self.sampler.per_rank}")
        self.optimizer = build_optimizer(self.model, config.optim)
        self.step, self.best_loss = 0, math.inf
        self.forward_module: torch.nn.Module = self.model
        if context.world_size > 1:
            idle_motion_head = self.model.motion_head is not None and self.model.config.motion_weight == 0
            self.forward_module = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=idle_motion_head)
        if self.train.compile:
            self.forward_module = torch.compile(self.forward_module)

    def _build_model(self) -> MicronBERT:
        section = self.config.model
        if section.init:
            return load(section.init)
        return create_model(section.name, **section.overrides)

    def _build_data(self, cropper: FaceCropper | None) -> tuple[PairDataset, DataReport]:
        """Rank 0 decodes first (filling a shared cache), the other ranks then read it."""
        size = self.model.config.img_size
        if self.context.world_size > 1 and not self.context.is_main:
            dist.barrier()
        built = build_pair_dataset(self.config.data, size, self.train.seed, cropper)
        if self.context.world_size > 1 and self.context.is_main:
            dist.barrier()
        return built

    # --------------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        epoch, batch = divmod(self.step, self.sampler.batches_per_epoch)
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"step": self.step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": rng, "sampler": {"epoch": epoch, "batch": batch}, "best_loss": self.best_loss,
                "data_fingerprint": self.dataset.fingerprint(), "model_config": self.model.config.to_dict(),
                "global_batch": self.train.global_batch, "seed": self.train.seed,
                "config": self.config.to_dict()}

    def restore(self, path: Path) -> None:
        """Continue from a checkpoint; ``ValueError`` when it belongs to other data, model or batch."""
        state = load_checkpoint(path)
        for key, mine in (("data_fingerprint", self.dataset.fingerprint()),
                          ("model_config", self.model.config.to_dict()),
                          ("global_batch", self.train.global_batch), ("seed", self.train.seed)):
            if state[key] != mine:
                raise ValueError(f"{path}: cannot resume, its {key} differs from this run's")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.step, self.best_loss = int(state["step"]), float(state["best_loss"])

    # --------------------------------------------------------------------------------- loop
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's batches from the current step on, epoch after epoch."""
        workers = int(self.config.data.num_workers)
        while True:
            epoch, batch = divmod(self.step, self.sampler.batches_per_epoch)
            self.sampler.set_position(epoch, batch)
            self.dataset.set_epoch(epoch)
            loader = DataLoader(self.dataset, batch_size=self.sampler.per_rank, sampler=self.sampler,
                                num_workers=workers, pin_memory=self.device.type == "cuda", drop_last=True,
                                generator=torch.Generator().manual_seed(self.train.seed + epoch),
                                prefetch_factor=4 if workers else None)
            yield from loader

    def train_step(self, frame_t: torch.Tensor, frame_d: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """One optimiser step on this process's share of a global batch; returns the summed chunk losses
        (:data:`LOSS_KEYS`) and the last chunk's outputs."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.config.optim, self.train.steps)
        accum = self.train.accum_steps
        losses = torch.zeros(len(LOSS_KEYS), device=self.device)
        autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                                  enabled=self.train.bf16 and self.device.type == "cuda")
        for chunk, (part_t, part_d) in enumerate(zip(frame_t.chunk(accum), frame_d.chunk(accum))):
            generator = chunk_generator(self.train.seed, self.step, self.context.rank * accum + chunk, self.device)
            sync = chunk == accum - 1 or self.context.world_size == 1
            with (nullcontext() if sync else self.forward_module.no_sync()), autocast:
                out = self.forward_module(part_t, part_d, generator=generator)
                (out["loss"] / accum).backward()
            losses += torch.stack([out[key] for key in LOSS_KEYS]).detach().float()
        max_norm = self.config.optim.clip_grad if self.config.optim.clip_grad > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.update_teacher()
        self.step += 1
        return torch.cat([losses, grad_norm.detach().float().reshape(1)]), out

    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train to ``train.steps`` (from the last checkpoint when ``resume``) and return the summary."""
        self._prepare_outputs(resume)
        interval, interval_steps, checkpoint_losses = torch.zeros(len(LOSS_KEYS) + 1, device=self.device), 0, []
        clock, samples_since = time.perf_counter(), 0
        started = clock
        bar = tqdm(total=self.train.steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.context.is_main and self.train.progress))
        batches = self.batches()
        while self.step < self.train.steps:
            images_t, images_d = next(batches)
            frame_t, frame_d = normalise_batch(images_t, self.device), normalise_batch(images_d, self.device)
            stats, out = self.train_step(frame_t, frame_d)
            interval += stats
            interval_steps += 1
            samples_since += self.train.global_batch
            if self.step % self.train.log_every == 0:
                row = self._log_row(interval, interval_steps, samples_since / (time.perf_counter() - clock),
                                    time.perf_counter() - started)
                checkpoint_losses.append(row["loss"])
                bar.set_postfix(loss=f"{row['loss']:.4f}", rec=f"{row['rec_loss']:.4f}",
                                samples_s=f"{row['samples_per_s']:.1f}", refresh=False)
                interval.zero_()
                interval_steps, samples_since, clock = 0, 0, time.perf_counter()
            if self.context.is_main and self.step % self.train.preview_every == 0:
                write_png_atomically(self.out_dir / "previews" / f"step_{self.step:08d}.png",
                                     preview_image(self.model, frame_t[-out["pred"].shape[0]:], out,
                                                   self.train.preview_images))
            if self.step % self.train.checkpoint_every == 0 or self.step == self.train.steps:
                self._checkpoint(float(np.mean(checkpoint_losses)) if checkpoint_losses else math.inf)
                checkpoint_losses = []
            bar.update(1)
        bar.close()
        return self._finish(time.perf_counter() - started)

    def _prepare_outputs(self, resume: bool) -> None:
        latest = latest_checkpoint(self.checkpoints)
        if resume and latest is not None:
            self.restore(latest)
        elif latest is not None:
            raise ValueError(f"{self.out_dir} already holds a run ({latest.name}); resume it with --resume "
                             "or choose another train.out_dir")
        if self.context.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            truncate_metrics(self.metrics_path, self.step)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
            write_json_atomically(self.out_dir / "data_report.json", self.report.to_dict())

    def _log_row(self, interval: torch.Tensor, steps: int, samples_per_s: float, elapsed: float) -> dict:
        totals = interval.clone()
        if self.context.world_size > 1:
            dist.all_reduce(totals)
        chunks = steps * self.train.accum_steps * self.context.world_size
        losses = dict(zip(LOSS_KEYS, (totals[:len(LOSS_KEYS)] / chunks).tolist()))
        row = {"step": self.step, "epoch": self.step // self.sampler.batches_per_epoch,
               "lr": self.optimizer.param_groups[0]["lr"], **losses,
               "grad_norm": float(totals[len(LOSS_KEYS)]) / (steps * self.context.world_size),
               "samples_per_s": samples_per_s, "elapsed_s": elapsed}
        if self.context.is_main:
            with self.metrics_path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
        return row

    def _checkpoint(self, interval_loss: float) -> None:
        is_best = interval_loss < self.best_loss
        self.best_loss = min(self.best_loss, interval_loss)
        if self.context.is_main:
            save_checkpoint(self.state(), self.checkpoints, self.step, self.train.keep_last, is_best)
            self._plot_curves()

    def _plot_curves(self) -> None:
        from micronbert.viz import save_figure_atomically, training_curves_figure

        rows = read_metrics(self.metrics_path) if self.metrics_path.is_file() else []
        if rows:
            title = f"pre-training of {self.config.model.name} (global batch {self.train.global_batch})"
            save_figure_atomically(training_curves_figure(rows, title), self.out_dir / "curves.png")

    def _finish(self, seconds: float) -> dict[str, Any]:
        difference = replica_difference(self.model)
        if difference > 0:
            raise RuntimeError(f"processes disagree after training: parameters differ by up to {difference:g}")
        summary = {"steps": self.step, "seconds": seconds, "best_loss": self.best_loss,
                   "world_size": self.context.world_size, "replica_max_difference": difference,
                   "checkpoints": [p.name for p in step_checkpoints(self.checkpoints)],
                   "model": str(self.out_dir / "model"), "data": self.report.to_dict()}
        if self.context.is_main:
            save(self.model, self.out_dir / "model")
            write_json_atomically(self.out_dir / "summary.json", summary)
        return summary


def pretrain(config: PretrainConfig, resume: bool = False, cropper: FaceCropper | None = None) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) pre-training as configured; joins the torchrun process group when
    started under torchrun. Returns the run summary."""
    device_kind = config.train.device if config.train.device != "auto" else (
        "cuda" if torch.cuda.is_available() else "cpu")
    context = init_distributed(device_kind)
    if context.world_size == 1:
        return Pretrainer(config, context, cropper).run(resume)
    try:
        summary = Pretrainer(config, context, cropper).run(resume)
        dist.barrier()
        return summary
    finally:
        leave_process_group()


def leave_process_group() -> None:
    """Destroy the process group once nothing holds it any more (DDP's reducer may sit in a reference cycle):
    a gloo group left to the interpreter's exit, or torn down while a peer still talks to it, can abort."""
    gc.collect()
    dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ command line
def add_pretrain_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``pretrain`` on a sub-command set; its ``run`` returns an exit status."""
    parser = subparsers.add_parser(
        "pretrain", help="self-supervised pre-training on unlabeled video",
        description="Pre-train μ-BERT on frame pairs from frame folders, videos or a manifest. Configure with "
        "a YAML file and --set section.key=value overrides; start several processes with torchrun.")
    parser.add_argument("--config", required=True, help="YAML file (e.g. configs/pretrain_tiny.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set optim.lr=1e-4 (repeatable; value read as YAML)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint in train.out_dir")
    parser.set_defaults(run=run_pretrain_command)
    return parser


def run_pretrain_command(args: argparse.Namespace) -> int:
    """The ``pretrain`` sub-command."""
    config = PretrainConfig.from_yaml(args.config, args.overrides)
    summary = pretrain(config, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"pre-trained {summary['steps']} steps in {summary['seconds']:.1f} s; model: {summary['model']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m micronbert.train.pretrain`` (what ``micronbert pretrain`` runs)."""
    from micronbert.cli import main as cli_main

    return cli_main(["pretrain", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
