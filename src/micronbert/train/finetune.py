"""Recognition fine-tuning of μ-BERT (METHOD.md §8): ``micronbert finetune``.

Onset in the I_t slot, apex in the I_{t+δ} slot, the S-weighted DMA head, class-weighted cross-entropy.

- ``finetune`` mode: encoder, DMA and head train; the encoder at ``encoder_lr``, the rest at ``lr``. Each
  training pair gets one random crop, flip and small affine, applied identically to both frames.
- ``frozen`` mode: encoder tokens are computed once per frame and cached on disk
  (:class:`micronbert.train.token_cache.TokenCache`); only DMA and head train (PoI has no parameters), or,
  with ``frozen_train: head``, only the head on its inputs (saliency-pooled DMA features, or the motion head's flow
  with ``head: motion``) computed once. The frames are
  seen un-augmented, since the encoder never runs again.

The training budget is fixed (``epochs``); nothing is chosen on held-out data.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm import tqdm

from micronbert.data.datasets import ROOT_ARGUMENT_HELP, get_reader, get_scheme, root_from_arguments
from micronbert.data.datasets import load as load_dataset
from micronbert.data.datasets.schemes import apply_scheme
from micronbert.data.flow import FLOW_METHODS
from micronbert.data.frames import frame_path, read_frame
from micronbert.data.table import LoadReport, load_table, sample_key
from micronbert.data.transforms import to_model_input
from micronbert.model import MicronBERT, create_model, load, save
from micronbert.train.metrics import balanced_class_weights
from micronbert.train.token_cache import CacheStats, TokenCache, default_cache_dir
from micronbert.io import (check_positive_int, config_from_yaml, dataclass_from_mapping, read_json_mapping,
                           write_json_atomically)

MODES = ("finetune", "frozen")
FROZEN_TRAIN = ("dma+head", "head")


@dataclass(frozen=True)
class AugmentConfig:
    """Paired augmentation: one draw per pair, applied to onset and apex alike.

    crop_scale: side of the random square crop as a fraction of the image (resized back);
    flip: horizontal flip with probability 0.5; max_rotation: degrees; max_translate: fraction of the side.
    """

    enabled: bool = True
    crop_scale: tuple[float, float] = (0.85, 1.0)
    flip: bool = True
    max_rotation: float = 5.0
    max_translate: float = 0.03

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.crop_scale)
        object.__setattr__(self, "crop_scale", (low, high))
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"augment.crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if not 0.0 <= self.max_rotation <= 45.0 or not 0.0 <= self.max_translate <= 0.5:
            raise ValueError(f"augment.max_rotation must lie in [0, 45] and max_translate in [0, 0.5], got "
                             f"{self.max_rotation}, {self.max_translate}")


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a recognition run needs; ``from_yaml`` reads the same fields from a YAML file.

    model: named configuration (``tiny``, ``official-small``, ``base``); weights: a micronbert checkpoint
    folder (``micronbert.save``) to start from, None for random initialisation; model_overrides: ModelConfig
    fields changed on top. epochs × batches is the fixed budget per fold. cache_dir: token cache of the
    ``frozen`` mode (None: :func:`micronbert.train.token_cache.default_cache_dir`); frozen_train: what trains in
    ``frozen`` mode, ``dma+head`` (METHOD.md §8) or ``head`` (DMA kept as loaded; far cheaper at 224).
    Baseline settings: ``ststnet_*`` and ``flow_method`` for STSTNet on flow images, ``framediff_size`` for the
    frame difference, ``flowgrid_*`` for the cell-averaged flow (:class:`~micronbert.baselines.FlowGridConfig`).
    """

    model: str = "tiny"
    weights: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    mode: str = "frozen"
    frozen_train: str = "dma+head"
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    encoder_lr: float = 1e-4
    weight_decay: float = 0.05
    head_dropout: float = 0.1
    class_weighted: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    cache_dir: str | None = None
    cache_dtype: str = "float16"
    encode_batch_size: int = 16
    ststnet_epochs: int = 40
    ststnet_lr: float = 5e-4
    flow_method: str = "auto"
    framediff_size: int = 16
    flowgrid_cells: int = 8
    flowgrid_method: str = "farneback"

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", dataclass_from_mapping(AugmentConfig, self.augment, "augment"))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.frozen_train not in FROZEN_TRAIN:
            raise ValueError(f"frozen_train must be one of {FROZEN_TRAIN}, got {self.frozen_train!r}")
        for name in ("epochs", "batch_size", "encode_batch_size", "ststnet_epochs", "framediff_size",
                     "flowgrid_cells"):
            check_positive_int(name, getattr(self, name))
        for name in ("flow_method", "flowgrid_method"):
            if getattr(self, name) not in FLOW_METHODS:
                raise ValueError(f"{name} must be one of {FLOW_METHODS}, got {getattr(self, name)!r}")
        for name in ("lr", "encoder_lr", "ststnet_lr"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if float(self.weight_decay) < 0 or not 0.0 <= float(self.head_dropout) < 1.0:
            raise ValueError(f"weight_decay must be >= 0 and head_dropout in [0, 1), got "
                             f"{self.weight_decay}, {self.head_dropout}")
        if not isinstance(self.model_overrides, dict):
            raise ValueError(f"model_overrides must be a mapping, got {self.model_overrides!r}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Build from a plain mapping; unknown keys raise ``ValueError`` naming them."""
        return dataclass_from_mapping(cls, data, "finetune config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> FinetuneConfig:
        """Read the fields from a YAML mapping (optionally under a top-level ``finetune:`` key)."""
        return config_from_yaml(cls.from_dict, path, "finetune")


# --------------------------------------------------------------------------------------------- samples
class SampleError(ValueError):
    """A sample that cannot be used; the message names it."""


@dataclass
class PairData:
    """Onset/apex pairs read from a sample table, resized to the model input size.

    ``keys[i]`` names sample i (:func:`micronbert.data.table.sample_key`); ``rows[i]`` is its row index in
    the table given to :func:`load_pairs`; ``skipped`` lists (sample key, reason) of the rows left out.
    """

    onsets: np.ndarray
    apexes: np.ndarray
    labels: np.ndarray
    keys: list[str]
    rows: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def _row_key(row: Any) -> str:
    return sample_key(row.dataset, row.subject, row.clip, row.onset)


def read_pair(row: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The onset and apex frames of one table row, each resized to size×size uint8 RGB.

    Raises :class:`SampleError` naming the sample for a missing label-independent problem: onset after apex,
    apex outside the clip, a missing or unreadable frame, onset and apex of different sizes.
    """
    key = _row_key(row)
    if pd.isna(row.onset) or pd.isna(row.apex):
        raise SampleError(f"{key}: onset or apex frame is not known")
    onset, apex = int(row.onset), int(row.apex)
    if onset > apex:
        raise SampleError(f"{key}: onset {onset} is after apex {apex}")
    if not pd.isna(row.offset) and apex > int(row.offset):
        raise SampleError(f"{key}: apex {apex} is outside the clip (offset {int(row.offset)})")
    frames = list(row.frames)
    if not frames:
        raise SampleError(f"{key}: the table lists no frames (load the dataset with check_frames=True)")
    images = []
    for name, number in (("onset", onset), ("apex", apex)):
        try:
            images.append(read_frame(frame_path(frames, number)))
        except KeyError:
            raise SampleError(f"{key}: {name} frame {number} is not among the clip's frames "
                              f"({Path(frames[0]).parent})") from None
        except (FileNotFoundError, ValueError) as err:
            raise SampleError(f"{key}: {name} frame {number}: {err}") from None
    if images[0].shape != images[1].shape:
        raise SampleError(f"{key}: onset and apex frames differ in size: {images[0].shape[:2]} vs "
                          f"{images[1].shape[:2]}")
    return resize_square(images[0], size), resize_square(images[1], size)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to size×size (area interpolation when shrinking)."""
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    shrinking = image.shape[0] > size or image.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def load_pairs(table: pd.DataFrame, size: int, skip_bad: bool = False) -> PairData:
    """Read every labelled sample's onset and apex frames (see :func:`read_pair`).

    A row without a label (the class scheme dropped it) or with an unusable pair raises
    :class:`SampleError` naming it, unless ``skip_bad``: then it is left out and listed in ``skipped``.
    """
    onsets, apexes, labels, keys, rows, skipped = [], [], [], [], [], []
    for index, row in enumerate(table.itertuples(index=False)):
        try:
            if pd.isna(row.label):
                raise SampleError(f"{_row_key(row)}: no class label (emotion {row.emotion!r} is not in the "
                                  "class scheme)")
            onset, apex = read_pair(row, size)
        except SampleError as err:
            if not skip_bad:
                raise
            skipped.append((_row_key(row), str(err)))
            continue
        onsets.append(onset)
        apexes.append(apex)
        labels.append(int(row.label))
        keys.append(_row_key(row))
        rows.append(index)
    empty = np.zeros((0, size, size, 3), dtype=np.uint8)
    return PairData(np.stack(onsets) if onsets else empty, np.stack(apexes) if apexes else empty,
                    np.asarray(labels, dtype=np.int64), keys, np.asarray(rows, dtype=np.int64), skipped)


# ------------------------------------------------------------------------------------- augmentation
def paired_augment(onset: torch.Tensor, apex: torch.Tensor, config: AugmentConfig,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one random crop + flip + small rotation/translation per pair, identically to both frames."""
    if not config.enabled:
        return onset, apex
    batch = onset.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator)

    scale = uniform(*config.crop_scale)
    angle = torch.deg2rad(uniform(-config.max_rotation, config.max_rotation))
    shift_room = (1.0 - scale) + 2.0 * config.max_translate
    shift_x, shift_y = uniform(-1, 1) * shift_room, uniform(-1, 1) * shift_room
    flip = torch.ones(batch)
    if config.flip:
        flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = scale * torch.cos(angle) * flip
    theta[:, 0, 1] = -scale * torch.sin(angle)
    theta[:, 1, 0] = scale * torch.sin(angle) * flip
    theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, 0, 2], theta[:, 1, 2] = shift_x, shift_y
    theta = theta.to(onset.device, onset.dtype)
    grid = F.affine_grid(theta, list(onset.shape), align_corners=False)
    both = F.grid_sample(torch.cat([onset, apex]), torch.cat([grid, grid]), mode="bilinear",
                         padding_mode="border", align_corners=False)
    return both[:batch], both[batch:]


# ------------------------------------------------------------------------------------------- model
def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """:func:`~micronbert.train.metrics.balanced_class_weights` as a float32 tensor for the cross-entropy."""
    return torch.tensor(balanced_class_weights(labels, num_classes), dtype=torch.float32)


def build_model(config: FinetuneConfig, num_classes: int, pretrained: bool = True) -> MicronBERT:
    """The model to train: ``config.weights`` when given and ``pretrained``, otherwise random; fresh head."""
    if pretrained and config.weights:
        model = load(config.weights)
        if config.model_overrides:
            model = _with_overrides(model, config.model_overrides, config.weights)
    else:
        model = create_model(config.model, **config.model_overrides)
    model.reset_head(num_classes, dropout=config.head_dropout)
    return model


def _with_overrides(model: MicronBERT, overrides: dict[str, Any], source: str) -> MicronBERT:
    """The loaded weights in a model rebuilt with ``overrides`` (which must not change any tensor shape)."""
    rebuilt = MicronBERT(model.config.replace(**overrides))
    try:
        rebuilt.load_state_dict(model.state_dict())
    except RuntimeError as err:
        raise ValueError(f"{source}: model_overrides {overrides} do not fit the checkpoint's weights ({err})") from None
    return rebuilt


def trainable_modules(model: MicronBERT, mode: str) -> dict[str, list[torch.nn.Parameter]]:
    """Parameter groups that train in ``mode``: ``encoder`` (finetune only) and ``rest`` (DMA, motion head if
    any, recognition head)."""
    comparison = [model.att] + ([model.motion_head] if model.motion_head is not None else [])
    rest = [p for module in [*comparison, model.head] for p in module.parameters()]
    encoder = list(model.backbone.parameters()) if mode == "finetune" else []
    return {"encoder": encoder, "rest": rest}


def _optimiser(model: MicronBERT, config: FinetuneConfig, mode: str) -> torch.optim.Optimizer:
    groups = trainable_modules(model, mode)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    param_groups = []
    for name, lr in (("encoder", config.encoder_lr), ("rest", config.lr)):
        for parameter in groups[name]:
            parameter.requires_grad_(True)
        if groups[name]:
            param_groups.append({"params": groups[name], "lr": lr})
    return torch.optim.AdamW(param_groups, weight_decay=config.weight_decay)


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(count, generator=generator)
    return [order[start:start + batch_size] for start in range(0, count, batch_size)]


def _train_epochs(config: FinetuneConfig, count: int, generator: torch.Generator,
                  train_batch: Callable[[torch.Tensor], torch.Tensor], progress: bool) -> list[float]:
    """``config.epochs`` passes over ``count`` samples in shuffled batches; ``train_batch`` takes one optimiser
    step on a batch of positions and returns its loss. Returns the mean training loss of each epoch."""
    losses = []
    bar = tqdm(range(config.epochs), desc="epochs", unit="epoch", disable=not progress, file=sys.stderr)
    for _ in bar:
        total: torch.Tensor | float = 0.0
        for batch in _batches(count, config.batch_size, generator):
            total = total + train_batch(batch).float() * len(batch)  # stays on the device until the epoch ends
        losses.append(float(total) / count)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    return losses


def _check_training_labels(labels: np.ndarray, num_classes: int) -> None:
    if len(labels) == 0:
        raise ValueError("no training samples")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")


def train_on_pairs(model: MicronBERT, onsets: np.ndarray, apexes: np.ndarray, labels: np.ndarray,
                   config: FinetuneConfig, mode: str = "finetune", progress: bool = False) -> list[float]:
    """Train on uint8 image pairs (n, S, S, 3) for ``config.epochs`` epochs with paired augmentation; returns
    the mean training loss of each epoch."""
    _check_training_labels(labels, model.config.num_classes)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = _optimiser(model, config, mode)
    weights = class_weights(labels, model.config.num_classes) if config.class_weighted else None
    targets = torch.as_tensor(labels)

    def train_batch(batch: torch.Tensor) -> torch.Tensor:
        onset, apex = paired_augment(to_model_input(onsets[batch.numpy()]), to_model_input(apexes[batch.numpy()]),
                                     config.augment, generator)
        return _step(optimiser, model.recognize(onset, apex)["logits"], targets[batch], weights)

    model.train()
    losses = _train_epochs(config, len(labels), generator, train_batch, progress)
    model.eval()
    return losses


def train_on_tokens(model: MicronBERT, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor,
                    labels: np.ndarray, config: FinetuneConfig, progress: bool = False) -> list[float]:
    """``frozen`` mode: train DMA and head on cached encoder tokens (n, 1 + N, dim) for ``config.epochs``;
    returns the mean training loss of each epoch."""
    _check_training_labels(labels, model.config.num_classes)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = _optimiser(model, config, "frozen")
    weights = class_weights(labels, model.config.num_classes) if config.class_weighted else None
    targets = torch.as_tensor(labels)

    def train_batch(batch: torch.Tensor) -> torch.Tensor:
        logits = model.recognize_tokens(apex_tokens[batch].float(), onset_tokens[batch].float())["logits"]
        return _step(optimiser, logits, targets[batch], weights)

    model.train()
    losses = _train_epochs(config, len(labels), generator, train_batch, progress)
    model.eval()
    return losses


@torch.no_grad()
def head_inputs(model: MicronBERT, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor,
                batch_size: int = 64) -> torch.Tensor:
    """What the recognition head reads before its LN (:meth:`MicronBERT.head_input`, (n, features)), computed
    once from cached tokens with the model's current DMA or motion head."""
    model.eval()
    chunks = [model.head_input(apex_tokens[start:start + batch_size].float(),
                               onset_tokens[start:start + batch_size].float())
              for start in range(0, len(onset_tokens), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, model.head_features)


def train_head_on_features(model: MicronBERT, features: torch.Tensor, labels: np.ndarray,
                           config: FinetuneConfig, progress: bool = False) -> list[float]:
    """``frozen_train: head``: train only the recognition head on precomputed head inputs for ``config.epochs``;
    returns the mean training loss of each epoch."""
    _check_training_labels(labels, model.config.num_classes)
    generator = torch.Generator().manual_seed(config.seed)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in model.head.parameters():
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(model.head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    weights = class_weights(labels, model.config.num_classes) if config.class_weighted else None
    targets = torch.as_tensor(labels)
    head = model.head

    def train_batch(batch: torch.Tensor) -> torch.Tensor:
        return _step(optimiser, head(features[batch]), targets[batch], weights)

    model.train()
    losses = _train_epochs(config, len(labels), generator, train_batch, progress)
    model.eval()
    return losses


@torch.no_grad()
def predict_features(model: MicronBERT, features: torch.Tensor) -> np.ndarray:
    """Class probabilities (n, classes) from precomputed head inputs (:func:`head_inputs`)."""
    model.eval()
    return torch.softmax(model.head(features), dim=1).numpy()


def _step(optimiser: torch.optim.Optimizer, logits: torch.Tensor, targets: torch.Tensor,
          weights: torch.Tensor | None) -> torch.Tensor:
    loss = F.cross_entropy(logits, targets, weight=weights)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach()


@torch.no_grad()
def predict_pairs(model: MicronBERT, onsets: np.ndarray, apexes: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Class probabilities (n, classes) of uint8 image pairs."""
    model.eval()
    chunks = [torch.softmax(model.recognize(to_model_input(onsets[i:i + batch_size]),
                                            to_model_input(apexes[i:i + batch_size]))["logits"], dim=1)
              for i in range(0, len(onsets), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, model.config.num_classes))


@torch.no_grad()
def predict_tokens(model: MicronBERT, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor,
                   batch_size: int = 64) -> np.ndarray:
    """Class probabilities (n, classes) from cached tokens."""
    model.eval()
    chunks = [torch.softmax(model.recognize_tokens(apex_tokens[i:i + batch_size].float(),
                                                   onset_tokens[i:i + batch_size].float())["logits"], dim=1)
              for i in range(0, len(onset_tokens), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, model.config.num_classes))


def token_cache_for(model: MicronBERT, config: FinetuneConfig) -> TokenCache:
    """The token cache of ``config`` for ``model``'s encoder."""
    root = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    return TokenCache(root, model, config.cache_dtype, config.encode_batch_size)


def cached_pair_tokens(model: MicronBERT, pairs: PairData,
                       config: FinetuneConfig) -> tuple[torch.Tensor, torch.Tensor, CacheStats]:
    """Encoder tokens of every onset and apex in ``pairs`` (encoded once per distinct frame, then cached),
    with the cache's count of frames encoded and found."""
    cache = token_cache_for(model, config)
    tokens = cache.tokens(np.concatenate([pairs.onsets, pairs.apexes]))
    return tokens[:len(pairs)], tokens[len(pairs):], cache.stats


# --------------------------------------------------------------------------------------- finetune run
def finetune(table: pd.DataFrame, config: FinetuneConfig, out_dir: str | Path,
             class_names: Sequence[str], skip_bad: bool = False,
             log: Callable[[str], None] = print, progress: bool = False) -> Path:
    """Train on every labelled sample of ``table`` and write ``out_dir/model`` (checkpoint),
    ``out_dir/classes.json`` (class names, configuration, samples used and skipped, the mean training loss of
    each epoch) and ``out_dir/training_loss.png``; returns ``out_dir``."""
    out = Path(out_dir)
    model = build_model(config, len(class_names))
    pairs = load_pairs(table, model.config.img_size, skip_bad=skip_bad)
    for _, reason in pairs.skipped:
        log(f"skipped {reason}")
    if len(pairs) == 0:
        raise ValueError("no usable samples to train on")
    torch.manual_seed(config.seed)
    if config.mode == "frozen":
        onset_tokens, apex_tokens, _ = cached_pair_tokens(model, pairs, config)
        if config.frozen_train == "head":
            losses = train_head_on_features(model, head_inputs(model, onset_tokens, apex_tokens),
                                            pairs.labels, config, progress)
        else:
            losses = train_on_tokens(model, onset_tokens, apex_tokens, pairs.labels, config, progress)
    else:
        losses = train_on_pairs(model, pairs.onsets, pairs.apexes, pairs.labels, config, progress=progress)
    save(model, out / "model")
    write_json_atomically(out / "classes.json", {"classes": list(class_names), "config": config.to_dict(),
                                                  "samples": len(pairs), "skipped": pairs.skipped,
                                                  "train_loss": losses})
    from micronbert.viz import save_figure_atomically, training_loss_figure

    save_figure_atomically(training_loss_figure([losses], f"fine-tuning ({config.mode}) on {len(pairs)} samples"),
                           out / "training_loss.png")
    return out


# ------------------------------------------------------------------------------------------ inputs
def read_samples(table: str | None, dataset: str | None, root: str | Sequence[str] | None,
                 scheme: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The sample table and class names from either a saved table (``--table``) or a dataset
    (``--dataset`` + ``--root``, one folder or ``NAME=PATH`` entries as
    :func:`~micronbert.data.datasets.root_from_arguments` reads them), labelled with ``scheme`` (class names from the
    scheme, or ``0..K-1``)."""
    if (table is None) == (dataset is None):
        raise ValueError("give either --table or --dataset (with --root)")
    if table is not None:
        samples = load_table(table)
        prepared_with = scheme_of_prepared_table(table)
        if scheme is None and prepared_with is not None:
            return samples, _scheme_classes(prepared_with, samples, table)
        if scheme is not None:
            samples = apply_scheme(samples, scheme, LoadReport("table"), check_datasets=False)
    else:
        if root is None:
            raise ValueError("--dataset needs --root")
        scheme = scheme or get_reader(dataset).default_scheme
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = load_dataset(dataset, root_from_arguments(root), scheme=scheme)
    if scheme is not None:
        return samples, list(get_scheme(scheme).classes)
    labels = samples["label"].dropna()
    if labels.empty:
        raise ValueError("the samples carry no class labels; choose a class scheme with --scheme")
    return samples, [str(i) for i in range(int(labels.max()) + 1)]


def scheme_of_prepared_table(table: str | Path) -> str | None:
    """The class scheme ``micronbert prepare`` labelled ``table`` with, from the report beside it (None when
    there is no such report or it names no scheme)."""
    from micronbert.data.prepare import REPORT_FILE

    report = Path(table).parent / REPORT_FILE
    if not report.is_file():
        return None
    scheme = read_json_mapping(report, "prepare report").get("scheme")
    return scheme if isinstance(scheme, str) else None


def _scheme_classes(scheme: str, samples: pd.DataFrame, table: str | Path) -> list[str]:
    classes = list(get_scheme(scheme).classes)
    labels = samples["label"].dropna()
    if not labels.empty and int(labels.max()) >= len(classes):
        raise ValueError(f"{table}: label {int(labels.max())} does not fit the {len(classes)} classes of {scheme}, "
                         "the scheme its prepare report names")
    return classes


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """``--table`` | ``--dataset``/``--root``, ``--scheme``, ``--config``, ``--weights``, ``--mode``,
    ``--skip-bad``."""
    parser.add_argument("--table", help="sample table CSV written by `micronbert prepare`")
    parser.add_argument("--dataset", help="dataset name to read directly (with --root)")
    parser.add_argument("--root", action="append", help=ROOT_ARGUMENT_HELP)
    parser.add_argument("--scheme", help="class scheme (default: the one `micronbert prepare` labelled the table "
                        "with, or the dataset's usual one)")
    parser.add_argument("--config", help="YAML finetune configuration (see configs/finetune_tiny.yaml)")
    parser.add_argument("--weights", help="micronbert checkpoint folder to start from, e.g. the model/ folder "
                        "`micronbert pretrain` wrote (overrides the configuration's weights)")
    parser.add_argument("--mode", choices=MODES, help="override the configuration's mode")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out unusable samples (and folds) instead of stopping; they are reported")


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The configuration named by ``--config`` with ``--weights`` and ``--mode`` applied."""
    config = FinetuneConfig.from_yaml(args.config) if args.config else FinetuneConfig()
    changes = {name: getattr(args, name) for name in ("weights", "mode") if getattr(args, name, None)}
    return dataclasses.replace(config, **changes)


def _run_finetune(args: argparse.Namespace) -> int:
    samples, class_names = read_samples(args.table, args.dataset, args.root, args.scheme)
    out = finetune(samples, config_from_args(args), args.out, class_names, skip_bad=args.skip_bad, progress=True)
    print(f"wrote {out / 'model'}, {out / 'classes.json'} and {out / 'training_loss.png'}")
    return 0


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``micronbert finetune``."""
    parser = subparsers.add_parser("finetune", help="train the recognition head (and encoder) on a dataset",
                                   description="Fine-tune μ-BERT for micro-expression recognition on all samples "
                                   "of a table or dataset and save the model with its class names.")
    add_sample_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (model/, classes.json, training_loss.png)")
    parser.set_defaults(run=_run_finetune)
    return parser
