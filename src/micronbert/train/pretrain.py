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

import json
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from micronbert.config import Config
from micronbert.data.frame_store import FrameStore, StorePairDataset
from micronbert.data.pretrain_pairs import (
    BatchNormaliser,
    DataReport,
    FaceCropper,
    PairSampler,
    PretrainDataConfig,
    PretrainPairDataset,
    StepBatchSampler,
    build_pretrain_dataset,
)
from micronbert.data.transforms import to_uint8
from micronbert.io import check_positive_int, write_json_atomically, write_png_atomically, write_text_atomically
from micronbert.model import MicronBERT, ModelConfig, ModelInitConfig, change_map, reconstruct_images, save
from micronbert.model.draws import StepDraws, draw_step
from micronbert.train.checkpointing import latest_checkpoint, load_checkpoint, save_checkpoint, step_checkpoints
from micronbert.train.distributed import (
    DistributedContext,
    init_distributed,
    leave_process_group,
    replica_difference,
    resolve_device,
)
from micronbert.train.optim import OptimConfig, build_optimizer, learning_rate
from micronbert.viz import heat_to_rgb, preview_grid, save_figure_atomically, training_curves_figure


# ------------------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class PretrainTrainConfig(Config):
    """Length, batch (global, over all processes), device, precision and output of a run.

    ``per_device_batch``, when given, fixes each process's batch instead, and the global batch follows the number of
    processes (with ``optim.base_lr`` and ``optim.warmup_samples`` the schedule follows it too). ``accum_steps``
    splits each process's share of the global batch into that many chunks whose gradients are accumulated;
    ``device`` is ``auto`` (the local GPU when there is one), ``cpu`` or ``cuda``; ``bf16`` turns on bfloat16
    autocast on GPUs; ``compile`` uses ``torch.compile``; ``timeout_minutes`` bounds how long a process waits for
    the others (e.g. while rank 0 prepares the data).
    """

    steps: int = 1000
    global_batch: int = 64
    per_device_batch: int | None = None
    accum_steps: int = 1
    timeout_minutes: float = 60.0
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
        if self.per_device_batch is not None:
            check_positive_int("train.per_device_batch", self.per_device_batch)
        if not self.timeout_minutes > 0:
            raise ValueError(f"train.timeout_minutes must be positive, got {self.timeout_minutes}")

    def batch_for(self, world_size: int) -> int:
        """The global batch of a run over ``world_size`` processes."""
        return self.global_batch if self.per_device_batch is None else self.per_device_batch * world_size


# summed per step, logged as interval means
LOSS_KEYS = ("loss", "rec_loss", "agree_loss", "motion_loss", "volatility_loss")


@dataclass(frozen=True)
class PretrainConfig(Config):
    """A whole pre-training run: sections ``model`` (:class:`~micronbert.model.ModelInitConfig`), ``data``,
    ``optim`` and ``train``."""

    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    model: ModelInitConfig = field(default_factory=ModelInitConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)


@dataclass(frozen=True)
class DrawingCollate:
    """DataLoader collate of :class:`StepBatchSampler` batches: the frames stacked, and the step's random draws
    (:func:`~micronbert.model.draws.draw_step`) made here, in the worker, one generator per chunk of the batch
    seeded by (seed, step, rank · accum_steps + chunk), so that they do not depend on the process layout."""

    config: ModelConfig
    seed: int
    first_chunk: int
    accum_steps: int

    def __call__(self, items: list[tuple[int, torch.Tensor, torch.Tensor]]
                 ) -> tuple[torch.Tensor, torch.Tensor, StepDraws]:
        step = items[0][0]
        images_t = torch.stack([first for _, first, _ in items])
        images_d = torch.stack([second for _, _, second in items])
        size, channels = images_t.shape[1], self.config.in_chans
        parts = [draw_step(self.config, len(chunk), channels, size, size,
                           chunk_generator(self.seed, step, self.first_chunk + index, torch.device("cpu")))
                 for index, chunk in enumerate(torch.arange(len(items)).chunk(self.accum_steps))]
        return images_t, images_d, StepDraws.cat(parts)


def chunk_generator(seed: int, step: int, chunk: int, device: torch.device) -> torch.Generator:
    """The generator of one chunk of one step (swap masks, crops): independent of process layout."""
    state = int(np.random.SeedSequence([seed, step, chunk]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


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
    write_text_atomically(path, "".join(json.dumps(row) + "\n" for row in kept))


def preview_image(model: MicronBERT, frame_t: torch.Tensor, out: dict[str, torch.Tensor],
                  count: int) -> np.ndarray:
    """Rows of (I_t, I_{t/s}, reconstruction, DMA change map) for the first ``count`` samples, RGB uint8."""
    count = min(count, frame_t.shape[0])
    with torch.no_grad():
        recon = reconstruct_images(model, out["pred"][:count].float(), frame_t[:count].float())
        changes = change_map(out["dma_map"][:count].float())
    height, width = frame_t.shape[-2:]
    grid = (height // model.config.patch_size, width // model.config.patch_size)
    return preview_grid([(first, swapped, rebuilt, heat_to_rgb(changes[index].reshape(grid).cpu().numpy(), width,
                                                               height))
                         for index, (first, swapped, rebuilt) in enumerate(zip(
                             to_uint8(frame_t[:count]), to_uint8(out["swapped"][:count]), to_uint8(recon)))])


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
        self.global_batch = self.train.batch_for(context.world_size)
        self.optim = config.optim.for_batch(self.global_batch)
        torch.manual_seed(self.train.seed)
        self.model = self.config.model.build().to(self.device)
        self.normalise = BatchNormaliser().to(self.device)
        self.dataset, self.report = self._build_data(cropper)
        self.sampler = (self.dataset.sampler(self.global_batch, context.rank, context.world_size)
                        if isinstance(self.dataset, StorePairDataset)
                        else PairSampler(len(self.dataset), self.global_batch, context.rank, context.world_size,
                                         self.train.seed))
        if self.sampler.per_rank % self.train.accum_steps:
            raise ValueError(f"train.accum_steps={self.train.accum_steps} does not divide the per-process batch "
                             f"{self.sampler.per_rank}")
        self.optimizer = build_optimizer(self.model, self.optim, fused=self.device.type == "cuda")
        self.step, self.best_loss = 0, math.inf
        self.forward_module: torch.nn.Module = self.model
        if context.world_size > 1:
            idle_motion_head = self.model.motion_head is not None and self.model.config.motion_weight == 0
            self.forward_module = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=idle_motion_head, gradient_as_bucket_view=True)
        if self.train.compile:
            self.forward_module = torch.compile(self.forward_module)

    def _build_data(self, cropper: FaceCropper | None
                    ) -> tuple[PretrainPairDataset | StorePairDataset, DataReport]:
        """From a frame store (rank 0 reads its index and sends it to the others), or from the sources: rank 0
        decodes first (filling a shared cache), the other ranks then read it."""
        if self.config.data.store:
            return self._open_store()
        size = self.model.config.img_size
        if self.context.world_size > 1 and not self.context.is_main:
            dist.barrier()
        built = build_pretrain_dataset(self.config.data, size, self.train.seed, cropper)
        if self.context.world_size > 1 and self.context.is_main:
            dist.barrier()
        return built

    def _open_store(self) -> tuple[StorePairDataset, DataReport]:
        data = self.config.data
        index = [FrameStore.read_index_bytes(data.store) if self.context.is_main else None]
        if self.context.world_size > 1:
            dist.broadcast_object_list(index, src=0)
        store = FrameStore.open(data.store, index_bytes=index[0])
        if store.size != self.model.config.img_size:
            raise ValueError(f"{data.store}: the store holds {store.size}-px frames, the model reads "
                             f"{self.model.config.img_size} px; build a store at that size")
        dataset = StorePairDataset(store, data.delta_s, self.train.seed, data.block)
        return dataset, dataset.report()

    # --------------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        epoch, batch = divmod(self.step, self.sampler.batches_per_epoch)
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"step": self.step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": rng, "sampler": {"epoch": epoch, "batch": batch}, "best_loss": self.best_loss,
                "data_fingerprint": self.dataset.fingerprint(), "model_config": self.model.config.to_dict(),
                "global_batch": self.global_batch, "seed": self.train.seed,
                "config": self.config.to_dict()}

    def restore(self, path: Path) -> None:
        """Continue from a checkpoint; ``ValueError`` when it belongs to other data, model or batch."""
        state = load_checkpoint(path)
        for key, mine in (("data_fingerprint", self.dataset.fingerprint()),
                          ("model_config", self.model.config.to_dict()),
                          ("global_batch", self.global_batch), ("seed", self.train.seed)):
            if state[key] != mine:
                raise ValueError(f"{path}: cannot resume, its {key} differs from this run's")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.step, self.best_loss = int(state["step"]), float(state["best_loss"])

    # --------------------------------------------------------------------------------- loop
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, StepDraws]]:
        """This process's batches from the current step on, epoch after epoch, with their random draws."""
        workers = int(self.config.data.num_workers)
        accum = self.train.accum_steps
        collate = DrawingCollate(self.model.config, self.train.seed, self.context.rank * accum, accum)
        while True:
            epoch, batch = divmod(self.step, self.sampler.batches_per_epoch)
            self.sampler.set_position(epoch, batch)
            self.dataset.set_epoch(epoch)
            loader = DataLoader(self.dataset, batch_sampler=StepBatchSampler(self.sampler), collate_fn=collate,
                                num_workers=workers, pin_memory=self.device.type == "cuda",
                                generator=torch.Generator().manual_seed(self.train.seed + epoch),
                                prefetch_factor=4 if workers else None)
            yield from loader

    def train_step(self, frame_t: torch.Tensor, frame_d: torch.Tensor,
                   draws: StepDraws) -> tuple[torch.Tensor, dict]:
        """One optimiser step on this process's share of a global batch with the step's ``draws``; returns the
        summed chunk losses (:data:`LOSS_KEYS`) and the last chunk's outputs. Nothing in it reads a value back to
        the host."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.optim, self.train.steps)
        accum = self.train.accum_steps
        losses = torch.zeros(len(LOSS_KEYS), device=self.device)
        autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                                  enabled=self.train.bf16 and self.device.type == "cuda")
        chunks = draws.to(self.device, non_blocking=True).chunk(accum)
        for chunk, (part_t, part_d) in enumerate(zip(frame_t.chunk(accum), frame_d.chunk(accum))):
            sync = chunk == accum - 1 or self.context.world_size == 1
            with (nullcontext() if sync else self.forward_module.no_sync()), autocast:
                out = self.forward_module(part_t, part_d, draws=chunks[chunk], check=False)
                (out["loss"] / accum).backward()
            losses += torch.stack([out[key] for key in LOSS_KEYS]).detach().float()
        max_norm = self.optim.clip_grad if self.optim.clip_grad > 0 else math.inf
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
            images_t, images_d, draws = next(batches)
            frame_t = self.normalise(images_t)
            stats, out = self.train_step(frame_t, self.normalise(images_d), draws)
            interval += stats
            interval_steps += 1
            samples_since += self.global_batch
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
            write_text_atomically(self.out_dir / "config.yaml", yaml.safe_dump(self.config.to_dict(), sort_keys=False))
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
        rows = read_metrics(self.metrics_path) if self.metrics_path.is_file() else []
        if rows:
            title = f"pre-training of {self.config.model.name} (global batch {self.global_batch})"
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
    context = init_distributed(device_kind, config.train.timeout_minutes)
    if context.world_size == 1:
        return Pretrainer(config, context, cropper).run(resume)
    try:
        summary = Pretrainer(config, context, cropper).run(resume)
        dist.barrier()
        return summary
    finally:
        leave_process_group()


