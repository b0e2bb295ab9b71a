"""Paired augmentation for recognition: one random crop, flip and small affine per (onset, apex) pair, applied to
both frames alike so that the motion between them is kept."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from micronbert.config import Config


@dataclass(frozen=True)
class AugmentConfig(Config):
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
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"augment.crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if not 0.0 <= self.max_rotation <= 45.0 or not 0.0 <= self.max_translate <= 0.5:
            raise ValueError(f"augment.max_rotation must lie in [0, 45] and max_translate in [0, 0.5], got "
                             f"{self.max_rotation}, {self.max_translate}")


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
