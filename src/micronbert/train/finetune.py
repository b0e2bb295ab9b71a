"""Recognition training of μ-BERT (METHOD.md §8) and the configuration of every recognition run
(``micronbert finetune`` and ``micronbert evaluate``).

Onset in the I_t slot, apex in the I_{t+δ} slot, the S-weighted DMA head, class-weighted cross-entropy.

- ``finetune`` mode: encoder, DMA and head train; the encoder at ``optim.encoder_lr``, the rest at ``optim.lr``.
  Each training pair gets one random crop, flip and small affine, applied identically to both frames.
- ``frozen`` mode: encoder tokens are computed once per frame and cached on disk
  (:class:`micronbert.train.token_cache.TokenCache`); only DMA and head train (PoI has no parameters), or,
  with ``train.frozen_train: head``, only the head on its inputs (saliency-pooled DMA features, or the motion
  head's flow with ``head: motion``) computed once. The frames are seen un-augmented, since the encoder never runs
  again.

The training budget is fixed (``train.epochs``); nothing is chosen on held-out data.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from micronbert.baselines.config import BaselinesConfig
from micronbert.config import Config
from micronbert.data.labelled_pairs import LabelledPairs
from micronbert.data.transforms import to_model_input
from micronbert.io import check_positive_int
from micronbert.metrics import balanced_class_weights
from micronbert.model import MicronBERT, ModelInitConfig
from micronbert.train.augment import AugmentConfig, paired_augment
from micronbert.train.device import DEVICES, autocast_for, pick_device
from micronbert.train.token_cache import CacheStats, TokenCacheConfig

MODES = ("finetune", "frozen")
EpochEnd = Callable[[int, float], None]  # called after each training epoch with its index and mean loss
FROZEN_TRAIN = ("dma+head", "head")


@dataclass(frozen=True)
class FinetuneOptimConfig(Config):
    """AdamW learning rates (DMA, motion and recognition heads at ``lr``, the encoder at ``encoder_lr``) and
    weight decay."""

    lr: float = 1e-3
    encoder_lr: float = 1e-4
    weight_decay: float = 0.05

    def __post_init__(self) -> None:
        for name in ("lr", "encoder_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"optim.{name} must be positive, got {getattr(self, name)!r}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class FinetuneTrainConfig(Config):
    """What trains and for how long: ``mode`` (``finetune`` or ``frozen``), in frozen mode ``frozen_train``
    (``dma+head``, METHOD.md §8, or ``head``, DMA kept as loaded, far cheaper at 224), the fixed budget of
    ``epochs`` × batches of ``batch_size`` per fold, the head's dropout, class-weighted cross-entropy, seed;
    ``device`` (``auto``: the GPU when there is one) and ``bf16`` autocast there; ``pretrain_on_synthetic``: train
    first on that many of micronbert's synthetic AU micro-expressions, then on the real training samples (the
    protocol of MiE-X; 0: off)."""

    mode: str = "frozen"
    frozen_train: str = "dma+head"
    epochs: int = 20
    batch_size: int = 16
    head_dropout: float = 0.1
    class_weighted: bool = True
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    pretrain_on_synthetic: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"train.mode must be one of {MODES}, got {self.mode!r}")
        if self.frozen_train not in FROZEN_TRAIN:
            raise ValueError(f"train.frozen_train must be one of {FROZEN_TRAIN}, got {self.frozen_train!r}")
        check_positive_int("train.epochs", self.epochs)
        check_positive_int("train.batch_size", self.batch_size)
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"train.head_dropout must lie in [0, 1), got {self.head_dropout}")
        if self.pretrain_on_synthetic < 0:
            raise ValueError(f"train.pretrain_on_synthetic must be >= 0, got {self.pretrain_on_synthetic}")
        if self.device not in DEVICES:
            raise ValueError(f"train.device must be one of {', '.join(DEVICES)}, got {self.device!r}")


@dataclass(frozen=True)
class FinetuneConfig(Config):
    """Everything a recognition run needs (``micronbert finetune`` trains once on all samples, ``micronbert
    evaluate`` once per fold): sections ``model`` (:class:`~micronbert.model.ModelInitConfig`), ``optim``,
    ``train``, ``augment``, ``cache`` (the token cache of frozen mode) and ``baselines`` (the other methods)."""

    model: ModelInitConfig = field(default_factory=ModelInitConfig)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache: TokenCacheConfig = field(default_factory=TokenCacheConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """:func:`~micronbert.metrics.balanced_class_weights` as a float32 tensor for the cross-entropy."""
    return torch.tensor(balanced_class_weights(labels, num_classes), dtype=torch.float32)


def build_model(config: FinetuneConfig, num_classes: int, pretrained: bool = True) -> MicronBERT:
    """The model to train: ``config.model.weights`` when given and ``pretrained``, otherwise a new one; fresh
    head."""
    model = config.model.build(pretrained).to(pick_device(config.train.device))
    model.reset_head(num_classes, dropout=config.train.head_dropout)
    return model


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
    for name, lr in (("encoder", config.optim.encoder_lr), ("rest", config.optim.lr)):
        for parameter in groups[name]:
            parameter.requires_grad_(True)
        if groups[name]:
            param_groups.append({"params": groups[name], "lr": lr})
    return torch.optim.AdamW(param_groups, weight_decay=config.optim.weight_decay)


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(count, generator=generator)
    return [order[start:start + batch_size] for start in range(0, count, batch_size)]


def _train_epochs(config: FinetuneConfig, count: int, generator: torch.Generator,
                  train_batch: Callable[[torch.Tensor], torch.Tensor], progress: bool,
                  epoch_end: EpochEnd | None = None) -> list[float]:
    """``config.train.epochs`` passes over ``count`` samples in shuffled batches; ``train_batch`` takes one optimiser
    step on a batch of positions and returns its loss; ``epoch_end(epoch, loss)`` is called after each epoch.
    Returns the mean training loss of each epoch."""
    losses = []
    bar = tqdm(range(config.train.epochs), desc="epochs", unit="epoch", disable=not progress, file=sys.stderr)
    for epoch in bar:
        total: torch.Tensor | float = 0.0
        for batch in _batches(count, config.train.batch_size, generator):
            total = total + train_batch(batch).float() * len(batch)  # stays on the device until the epoch ends
        losses.append(float(total) / count)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        if epoch_end is not None:
            epoch_end(epoch, losses[-1])
    return losses


def _targets(labels: np.ndarray, model: MicronBERT, config: FinetuneConfig
             ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The class weights of the cross-entropy (None when not class-weighted) and the labels, on the model's
    device."""
    weights = class_weights(labels, model.config.num_classes) if config.train.class_weighted else None
    return (None if weights is None else weights.to(model.device)), torch.as_tensor(labels).to(model.device)


def _check_training_labels(labels: np.ndarray, num_classes: int) -> None:
    if len(labels) == 0:
        raise ValueError("no training samples")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")


def train_on_pairs(model: MicronBERT, onsets: np.ndarray, apexes: np.ndarray, labels: np.ndarray,
                   config: FinetuneConfig, mode: str = "finetune", progress: bool = False,
                   epoch_end: EpochEnd | None = None) -> list[float]:
    """Train on uint8 image pairs (n, S, S, 3) for ``config.train.epochs`` epochs with paired augmentation; returns
    the mean training loss of each epoch."""
    _check_training_labels(labels, model.config.num_classes)
    generator = torch.Generator().manual_seed(config.train.seed)
    optimiser = _optimiser(model, config, mode)
    device = model.device
    weights, targets = _targets(labels, model, config)

    def train_batch(batch: torch.Tensor) -> torch.Tensor:
        onset, apex = paired_augment(to_model_input(onsets[batch.numpy()]), to_model_input(apexes[batch.numpy()]),
                                     config.augment, generator)
        with autocast_for(device, config.train.bf16):
            logits = model.recognize(onset=onset.to(device, non_blocking=True),
                                     apex=apex.to(device, non_blocking=True))["logits"]
        return _step(optimiser, logits, targets[batch.to(device)], weights)

    model.train()
    losses = _train_epochs(config, len(labels), generator, train_batch, progress, epoch_end)
    model.eval()
    return losses


def train_on_tokens(model: MicronBERT, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor,
                    labels: np.ndarray, config: FinetuneConfig, progress: bool = False,
                    epoch_end: EpochEnd | None = None) -> list[float]:
    """``frozen`` mode: train DMA and head on cached encoder tokens (n, 1 + N, dim) for ``config.train.epochs``;
    returns the mean training loss of each epoch."""
    _check_training_labels(labels, model.config.num_classes)
    generator = torch.Generator().manual_seed(config.train.seed)
    optimiser = _optimiser(model, config, "frozen")
    device = model.device
    weights, targets = _targets(labels, model, config)

    def train_batch(batch: torch.Tensor) -> torch.Tensor:
        with autocast_for(device, config.train.bf16):
            logits = model.recognize_tokens(onset_tokens=onset_tokens[batch].to(device).float(),
                                            apex_tokens=apex_tokens[batch].to(device).float())["logits"]
        return _step(optimiser, logits, targets[batch.to(device)], weights)

    model.train()
    losses = _train_epochs(config, len(labels), generator, train_batch, progress, epoch_end)
    model.eval()
    return losses


@torch.no_grad()
def head_inputs(model: MicronBERT, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor,
                batch_size: int = 64) -> torch.Tensor:
    """What the recognition head reads before its LN (:meth:`MicronBERT.head_input`, (n, features)), computed
    once from cached tokens with the model's current DMA or motion head."""
    model.eval()
    device = model.device
    chunks = [model.head_input(onset_tokens=onset_tokens[start:start + batch_size].to(device).float(),
                               apex_tokens=apex_tokens[start:start + batch_size].to(device).float())
              for start in range(0, len(onset_tokens), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, model.head_features, device=device)


def train_head_on_features(model: MicronBERT, features: torch.Tensor, labels: np.ndarray,
                           config: FinetuneConfig, progress: bool = False,
                           epoch_end: EpochEnd | None = None) -> list[float]:
    """``frozen_train: head``: train only the recognition head on precomputed head inputs for ``config.train.epochs``;
    returns the mean training loss of each epoch."""
    _check_training_labels(labels, model.config.num_classes)
    generator = torch.Generator().manual_seed(config.train.seed)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in model.head.parameters():
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(model.head.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    device = model.device
    weights, targets = _targets(labels, model, config)
    features = features.to(device)
    head = model.head

    def train_batch(batch: torch.Tensor) -> torch.Tensor:
        index = batch.to(device)
        return _step(optimiser, head(features[index]), targets[index], weights)

    model.train()
    losses = _train_epochs(config, len(labels), generator, train_batch, progress, epoch_end)
    model.eval()
    return losses


@torch.no_grad()
def predict_features(model: MicronBERT, features: torch.Tensor) -> np.ndarray:
    """Class probabilities (n, classes) from precomputed head inputs (:func:`head_inputs`)."""
    model.eval()
    return torch.softmax(model.head(features.to(model.device)), dim=1).float().cpu().numpy()


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
    device = model.device
    chunks = [torch.softmax(model.recognize(onset=to_model_input(onsets[i:i + batch_size]).to(device),
                                            apex=to_model_input(apexes[i:i + batch_size]).to(device))["logits"],
                            dim=1).float().cpu()
              for i in range(0, len(onsets), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, model.config.num_classes))


@torch.no_grad()
def predict_tokens(model: MicronBERT, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor,
                   batch_size: int = 64) -> np.ndarray:
    """Class probabilities (n, classes) from cached tokens."""
    model.eval()
    device = model.device
    chunks = [torch.softmax(model.recognize_tokens(onset_tokens=onset_tokens[i:i + batch_size].to(device).float(),
                                                   apex_tokens=apex_tokens[i:i + batch_size].to(device).float()
                                                   )["logits"], dim=1).float().cpu()
              for i in range(0, len(onset_tokens), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, model.config.num_classes))


def cached_pair_tokens(model: MicronBERT, pairs: LabelledPairs,
                       config: FinetuneConfig) -> tuple[torch.Tensor, torch.Tensor, CacheStats]:
    """Encoder tokens of every onset and apex in ``pairs`` (encoded once per distinct frame, then cached),
    with the cache's count of frames encoded and found."""
    cache = config.cache.open(model)
    tokens = cache.tokens(np.concatenate([pairs.onsets, pairs.apexes]))
    return tokens[:len(pairs)], tokens[len(pairs):], cache.stats


