"""Frame pairs (I_t, I_{t+δ}) for pre-training, with δ in seconds and a decoded-frame cache.

Every source (see :mod:`micronbert.data.video`) is decoded once, face-cropped (optional hook) or
centre-cropped to a square, resized to the model's input size and kept as one uint8 array
(T, S, S, 3): in memory, or in ``cache_dir`` as a raw file that is memory-mapped on later runs, so that
JPEG/video decoding never runs in the training loop and DataLoader workers share the pages.

Item ``i`` of :class:`PretrainPairDataset` is an anchor frame t of some source; δ is drawn uniformly in
``delta_s`` seconds, converted with that source's fps (at least one frame), from a generator seeded by
(seed, epoch, i): items do not depend on worker processes, ranks or the order they are read in.
:class:`PairSampler` deals global batches out to ranks so that K processes see exactly the samples one
process would with the same global batch.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..config import Config
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Box, centre_square, resize_square
from .video import (
    BadInputError,
    SourceIssue,
    SourceSpec,
    check_fps,
    check_policy,
    decode_frames,
    discover_sources,
    read_manifest,
    source_fps,
)

LOG = logging.getLogger(__name__)

# Face-crop hook: given the first usable frame of a source (H, W, 3 RGB uint8), the (x, y, width, height)
# box to crop every frame of that source to, or None for the default centre square. One box per source
# keeps co-located patches co-located, which the pair's micro-motion depends on.
FaceCropper = Callable[[np.ndarray], "Box | None"]
CACHE_VERSION = 1


@dataclass
class PretrainDataConfig(Config):
    """Where the frames come from and how pairs are drawn (the ``data`` section of a pre-training config).

    ``sources``: frame folders, video files or folders holding them; ``manifest``: a CSV listing sources
    (see :mod:`micronbert.data.video`); ``folder_fps``: frame rate of frame folders without one;
    ``delta_s``: range of δ in seconds; ``face_crop``: ``"package.module:function"`` of a
    :data:`FaceCropper`; ``cache_dir``: where decoded frames are kept between runs (None: memory only);
    ``on_bad_input``: ``"skip"`` (report and leave out) or ``"stop"`` (raise at the first problem);
    ``num_workers``: DataLoader worker processes. ``store``: instead of ``sources``/``manifest``, a frame store built
    by ``micronbert pretrain-index`` (:mod:`micronbert.data.frame_store`; for millions of frames), read with
    ``block`` consecutive pairs per block of the shuffled order (1: fully random order; larger: sequential reads).
    """

    sources: list[str] = field(default_factory=list)
    manifest: str | None = None
    folder_fps: float | None = None
    delta_s: tuple[float, float] = (0.02, 0.2)
    face_crop: str | None = None
    cache_dir: str | None = None
    on_bad_input: str = "skip"
    num_workers: int = 0
    store: str | None = None
    block: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        if not self.sources and not self.manifest and not self.store:
            raise ValueError("data: give sources (frame folders or videos), a manifest or a frame store")
        if self.store and (self.sources or self.manifest):
            raise ValueError("data: give either a frame store or sources/manifest, not both (the store holds its "
                             "sources)")
        if self.block < 1:
            raise ValueError(f"data.block must be >= 1, got {self.block}")
        if isinstance(self.sources, (str, bytes)):
            raise ValueError(f"data.sources must be a list of paths, got {self.sources!r}")
        if self.folder_fps is not None:
            check_fps(self.folder_fps, "data.folder_fps")
        if len(self.delta_s) != 2 or not 0.0 < self.delta_s[0] <= self.delta_s[1]:
            raise ValueError(f"data.delta_s must be (min, max) seconds with 0 < min <= max, got {self.delta_s}")
        check_policy(self.on_bad_input)
        if self.face_crop is not None and ":" not in self.face_crop:
            raise ValueError(f"data.face_crop must read 'package.module:function', got {self.face_crop!r}")
        if int(self.num_workers) < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")


@dataclass
class PreparedSource:
    """One source after decoding: ``frames`` (T, S, S, 3) uint8 (possibly memory-mapped), ``valid`` (T,)."""

    name: str
    fps: float
    frames: np.ndarray
    valid: np.ndarray


@dataclass
class DataReport:
    """What was read and every problem met (written next to the training logs)."""

    sources: list[str] = field(default_factory=list)
    frames: int = 0
    pairs: int = 0
    issues: list[SourceIssue] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"sources": self.sources, "frames": self.frames, "pairs": self.pairs,
                "issues": [{"path": i.path, "problem": i.problem} for i in self.issues]}


def load_face_cropper(target: str) -> FaceCropper:
    """Import the callable named ``"package.module:function"``."""
    module_name, _, attribute = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"data.face_crop: cannot import {target!r} ({err})") from None
    if not callable(function):
        raise ValueError(f"data.face_crop: {target!r} is not callable")
    return function


class FrameCache:
    """Decoded, resized frames of each source, kept in ``folder`` (None: in memory only).

    The key of a source covers its path, the size and modification time of its files, its fps, the output
    size and the face-crop hook, so a changed input is decoded again. Files are written under temporary
    names and renamed, the JSON index last: an interrupted build leaves no entry behind.
    """

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def key(self, spec: SourceSpec, fps: float, size: int, cropper_name: str) -> str:
        files = [spec.path] if spec.is_video else sorted(p for p in spec.path.iterdir() if p.is_file())
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        text = json.dumps([CACHE_VERSION, str(spec.path.resolve()), fps, size, cropper_name, stats])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def load(self, key: str) -> tuple[PreparedSource, list[SourceIssue]] | None:
        """The cached source and its recorded issues, or None when not cached (or damaged: decoded again)."""
        if self.folder is None or not (self.folder / f"{key}.json").is_file():
            return None
        try:
            index = json.loads((self.folder / f"{key}.json").read_text())
            frames = np.memmap(self.folder / f"{key}.u8", dtype=np.uint8, mode="r", shape=tuple(index["shape"]))
            issues = [SourceIssue(**issue) for issue in index["issues"]]
            return PreparedSource(index["name"], index["fps"], frames, np.array(index["valid"], bool)), issues
        except (OSError, ValueError, KeyError, TypeError):  # a damaged entry is decoded again
            return None

    def build(self, key: str, name: str, fps: float, size: int, frames: Iterator[np.ndarray | None],
              issues: list[SourceIssue]) -> PreparedSource:
        """Consume ``frames`` (None for an unusable frame) into the cache and return the prepared source."""
        blank = np.zeros((size, size, 3), np.uint8)
        if self.folder is None:
            decoded = list(frames)
            valid = np.array([f is not None for f in decoded], bool)
            stacked = np.stack([blank if f is None else f for f in decoded]) if decoded else blank[None, :0]
            return PreparedSource(name, fps, stacked, valid)
        data_path, index_path = self.folder / f"{key}.u8", self.folder / f"{key}.json"
        temporary = data_path.with_name(f".{data_path.name}.{os.getpid()}.tmp")
        valid_flags = []
        try:
            with temporary.open("wb") as handle:
                for frame in frames:
                    handle.write((blank if frame is None else frame).tobytes())
                    valid_flags.append(frame is not None)
            os.replace(temporary, data_path)
        finally:
            temporary.unlink(missing_ok=True)
        index = {"name": name, "fps": fps, "shape": [len(valid_flags), size, size, 3], "valid": valid_flags,
                 "issues": [{"path": i.path, "problem": i.problem} for i in issues]}
        temporary_index = index_path.with_name(f".{index_path.name}.{os.getpid()}.tmp")
        temporary_index.write_text(json.dumps(index))
        os.replace(temporary_index, index_path)
        frames_map = np.memmap(data_path, dtype=np.uint8, mode="r", shape=tuple(index["shape"]))
        return PreparedSource(name, fps, frames_map, np.array(valid_flags, bool))


def prepare_source(spec: SourceSpec, size: int, folder_fps: float | None, cache: FrameCache,
                   cropper: FaceCropper | None = None, cropper_name: str = "") -> tuple[PreparedSource,
                                                                                        list[SourceIssue]]:
    """Decode (or read from the cache) one source at ``size``²; frame-level problems come back as issues.

    Raises ``ValueError`` naming the source when it cannot be used at all.
    """
    fps = source_fps(spec, folder_fps)
    key = cache.key(spec, fps, size, cropper_name)
    cached = cache.load(key)
    if cached is not None:
        return cached
    issues: list[SourceIssue] = []
    prepared = cache.build(key, str(spec.path), fps, size, _resized_frames(spec, size, cropper, issues), issues)
    return prepared, issues


def _resized_frames(spec: SourceSpec, size: int, cropper: FaceCropper | None,
                    issues: list[SourceIssue]) -> Iterator[np.ndarray | None]:
    box: Box | None = None
    box_known = cropper is None
    for frame in decode_frames(spec):
        if frame.image is None:
            issues.append(frame.issue)
            yield None
            continue
        if not box_known:
            box = _face_box(cropper, frame.image, frame.label)
            box_known = True
        yield resize_square(frame.image, size, box if box is not None else centre_square(frame.image))


def _face_box(cropper: FaceCropper, image: np.ndarray, label: str) -> Box | None:
    try:
        box = cropper(image)
    except ValueError as err:
        raise ValueError(f"{label}: face crop failed ({err})") from None
    if box is not None and (len(box) != 4 or box[2] <= 0 or box[3] <= 0):
        raise ValueError(f"{label}: face crop returned an invalid box {box!r} (want x, y, width, height)")
    return box


def delta_frames(delta_s: tuple[float, float], fps: float) -> tuple[int, int]:
    """The range of δ in frames at ``fps``: each end rounded, at least one frame."""
    low = max(1, round(delta_s[0] * fps))
    return low, max(low, round(delta_s[1] * fps))


class PretrainPairDataset(Dataset):
    """Pairs (I_t, I_{t+δ}) of uint8 (S, S, 3) tensors; see the module docstring for the sampling."""

    def __init__(self, sources: Sequence[PreparedSource], delta_s: tuple[float, float], seed: int = 0) -> None:
        self.sources = list(sources)
        self.delta_s = (float(delta_s[0]), float(delta_s[1]))
        self.seed = int(seed)
        self.epoch = 0
        self._anchors = [self._anchor_frames(s) for s in self.sources]
        self._offsets = np.cumsum([0] + [len(a) for a in self._anchors])
        if self._offsets[-1] == 0:
            raise ValueError("no frame pair can be drawn from the data: every source is shorter than δ "
                             "or has too few readable frames")

    def _anchor_frames(self, source: PreparedSource) -> np.ndarray:
        """Valid frames t with at least one valid frame in [t + δ_min, t + δ_max]."""
        low, high = delta_frames(self.delta_s, source.fps)
        valid = source.valid
        count = np.concatenate([[0], np.cumsum(valid)])
        starts = np.arange(len(valid))
        first, last = np.minimum(starts + low, len(valid)), np.minimum(starts + high + 1, len(valid))
        return np.flatnonzero(valid & (count[last] - count[first] > 0))

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[int, int, int]:
        """(source number, t, t + δ) of item ``index`` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"pair index {index} out of range 0..{len(self) - 1}")
        source_number = int(np.searchsorted(self._offsets, index, side="right") - 1)
        source = self.sources[source_number]
        anchor = int(self._anchors[source_number][index - self._offsets[source_number]])
        low, high = delta_frames(self.delta_s, source.fps)
        last = min(len(source.valid) - 1, anchor + high)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        wanted = min(max(round(rng.uniform(*self.delta_s) * source.fps), low), last - anchor) + anchor
        candidates = anchor + low + np.flatnonzero(source.valid[anchor + low:last + 1])
        return source_number, anchor, int(candidates[np.argmin(np.abs(candidates - wanted))])

    def __getitem__(self, index: int | tuple[int, int]) -> tuple:
        """(I_t, I_{t+δ}) of item ``index``; for a ``(step, index)`` pair (:class:`StepBatchSampler`),
        (step, I_t, I_{t+δ})."""
        if isinstance(index, tuple):
            step, item = index
            return (step, *self[item])
        source_number, first, second = self.locate(index)
        frames = self.sources[source_number].frames
        return torch.from_numpy(np.array(frames[first])), torch.from_numpy(np.array(frames[second]))

    def fingerprint(self) -> str:
        """Identifies the data and the sampling (checked when a run is resumed)."""
        parts = [(s.name, len(s.valid), int(s.valid.sum()), s.fps) for s in self.sources]
        return hashlib.sha256(json.dumps([parts, self.delta_s, self.seed]).encode()).hexdigest()[:16]


class PairSampler(Sampler[int]):
    """Distributed, resumable sampler dealing out global batches.

    Each epoch is a permutation drawn from (seed, epoch); global batch b is its slice
    [b·G, (b+1)·G) and rank r takes the r-th of its ``world_size`` equal parts. A run of K processes thus
    sees exactly the batches of one process with the same global batch, and ``set_position(epoch, batch)``
    restarts in the middle of an epoch. Incomplete global batches are dropped.
    """

    def __init__(self, dataset_size: int, global_batch: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0) -> None:
        if global_batch < 1 or global_batch % world_size:
            raise ValueError(f"global batch {global_batch} must be a positive multiple of the {world_size} "
                             "processes")
        if dataset_size < global_batch:
            raise ValueError(f"the data holds {dataset_size} pairs, fewer than one global batch of "
                             f"{global_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.dataset_size, self.global_batch = dataset_size, global_batch
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.per_rank = global_batch // world_size
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.dataset_size // self.global_batch

    def set_position(self, epoch: int, batch: int = 0) -> None:
        if not 0 <= batch < self.batches_per_epoch:
            raise ValueError(f"batch {batch} outside 0..{self.batches_per_epoch - 1}")
        self.epoch, self.start_batch = int(epoch), int(batch)

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.dataset_size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        for batch in range(self.start_batch, self.batches_per_epoch):
            begin = batch * self.global_batch + self.rank * self.per_rank
            yield from order[begin:begin + self.per_rank].tolist()

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.per_rank


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """The batches of a :class:`PairSampler` with every index paired with its global step
    (epoch · batches_per_epoch + batch), so that a DataLoader worker knows which step it prepares."""

    def __init__(self, sampler: PairSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        sampler = self.sampler
        indices = iter(sampler)
        for batch in range(sampler.start_batch, sampler.batches_per_epoch):
            step = sampler.epoch * sampler.batches_per_epoch + batch
            yield [(step, next(indices)) for _ in range(sampler.per_rank)]

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch - self.sampler.start_batch


def build_pretrain_dataset(config: PretrainDataConfig, size: int, seed: int = 0,
                       cropper: FaceCropper | None = None) -> tuple[PretrainPairDataset, DataReport]:
    """Discover, validate, decode (or read from the cache) every source and build the pair dataset.

    Under ``on_bad_input="stop"`` the first problem raises :class:`BadInputError` naming the file; under
    ``"skip"`` it is logged, recorded in the report and left out. Raises ``ValueError`` when nothing
    usable remains.
    """
    report = DataReport()
    specs = read_manifest(config.manifest) if config.manifest else []
    specs += discover_sources(config.sources, report.issues)
    _check_issues(report.issues, config.on_bad_input)
    if cropper is None and config.face_crop:
        cropper = load_face_cropper(config.face_crop)
    cropper_name = config.face_crop or (getattr(cropper, "__qualname__", repr(cropper)) if cropper else "")
    cache = FrameCache(config.cache_dir)
    low_s = config.delta_s[0]
    prepared = []
    for spec in specs:
        try:
            source, issues = prepare_source(spec, size, config.folder_fps, cache, cropper, cropper_name)
            if len(source.valid) <= delta_frames(config.delta_s, source.fps)[0]:
                issues = issues + [SourceIssue(str(spec.path), f"only {len(source.valid)} frames at {source.fps:g} "
                                               f"fps: shorter than the smallest δ ({low_s:g} s)")]
            elif not source.valid.any():
                issues = issues + [SourceIssue(str(spec.path), "no readable frame")]
            else:
                prepared.append(source)
        except (ValueError, FileNotFoundError) as err:
            issues = [SourceIssue(str(spec.path), str(err))]
        _check_issues(issues, config.on_bad_input)
        report.issues.extend(issues)
    if not prepared:
        problems = "; ".join(map(str, report.issues)) or "no source given"
        raise ValueError(f"no usable source: {problems}")
    dataset = PretrainPairDataset(prepared, config.delta_s, seed)
    report.sources = [s.name for s in prepared]
    report.frames = int(sum(len(s.valid) for s in prepared))
    report.pairs = len(dataset)
    return dataset, report


def _check_issues(issues: Sequence[SourceIssue], on_bad_input: str) -> None:
    for issue in issues:
        if on_bad_input == "stop":
            raise BadInputError(f"bad input: {issue}")
        LOG.warning("skipping bad input: %s", issue)


class BatchNormaliser(torch.nn.Module):
    """uint8 (B, H, W, 3) → ImageNet-normalised float (B, 3, H, W), converted on the module's device (so only bytes
    cross the bus), with the mean and std held as buffers (no host-to-device copy per batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected a uint8 (B, H, W, 3) batch, got {images.dtype} {tuple(images.shape)}")
        x = images.to(self.mean.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.contiguous_format)


def normalise_batch(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """:class:`BatchNormaliser` on ``device``, for one-off batches."""
    return BatchNormaliser().to(device)(images)
