"""The pre-training optimiser: AdamW without decay on biases, norms and tokens, and a linear warm-up followed by a
cosine decay."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from micronbert.config import Config


@dataclass(frozen=True)
class OptimConfig(Config):
    """AdamW with linear warm-up then cosine decay to ``min_lr``; ``clip_grad`` 0 turns clipping off.
    Biases, norms and embedding tokens get no weight decay.

    For a run whose global batch follows the number of GPUs, give ``base_lr`` instead of ``lr``: the learning rate
    is then base_lr × global_batch / 256 (the linear scaling rule of MAE), and ``warmup_samples`` instead of
    ``warmup_steps``: the warm-up then lasts that many samples whatever the batch (:meth:`for_batch`)."""

    lr: float = 1.5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    clip_grad: float = 1.0
    base_lr: float | None = None
    warmup_samples: int | None = None

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"optim: need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.clip_grad < 0:
            raise ValueError("optim: weight_decay, warmup_steps and clip_grad must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if self.base_lr is not None and not self.base_lr > 0:
            raise ValueError(f"optim.base_lr must be positive, got {self.base_lr}")
        if self.warmup_samples is not None and self.warmup_samples < 0:
            raise ValueError(f"optim.warmup_samples must be >= 0, got {self.warmup_samples}")

    def for_batch(self, global_batch: int) -> OptimConfig:
        """The settings of a run with ``global_batch``: ``lr`` from ``base_lr`` and ``warmup_steps`` from
        ``warmup_samples`` where those are given (the rest unchanged)."""
        lr = self.lr if self.base_lr is None else self.base_lr * global_batch / 256
        warmup = (self.warmup_steps if self.warmup_samples is None
                  else math.ceil(self.warmup_samples / global_batch))
        return self.replace(lr=lr, min_lr=min(self.min_lr, lr), warmup_steps=warmup, base_lr=None,
                            warmup_samples=None)



def learning_rate(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine from ``lr`` to ``min_lr``."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    progress = (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps)
    return optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: torch.nn.Module, optim: OptimConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; 1-D tensors (biases, norms) and tokens without decay; ``fused``: one
    kernel for the whole update (on GPUs)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            plain = parameter.ndim <= 1 or name.endswith(("cls_token", "pos_embed"))
            (no_decay if plain else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, fused=fused or None)
