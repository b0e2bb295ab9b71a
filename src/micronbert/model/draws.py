"""The randomness of one pre-training step, drawn before the step: swap masks, agreement crops, warps.

:func:`draw_step` makes every random choice of :meth:`MicronBERT.forward` for a batch, in the order the forward
pass has always made them, from one generator. The pre-training loop draws them in its DataLoader workers (on the
CPU, from (seed, step, chunk)) and hands them to the model as tensors, so that the step on the accelerator makes no
random draw and reads nothing back to the host; called without draws, the model draws them itself, the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .config import ModelConfig
from .crops import random_crop_boxes
from .motion import WARP_GAIN, WARP_NOISE_STD, WARP_OFFSET, random_warp_field
from .swapping import blockwise_swap_mask


@dataclass
class StepDraws:
    """Swap mask (B, N) bool; agreement crop boxes (views, B, 4) as (centre_x, centre_y, width, height) in units of
    the image side (``None`` without agreement); the warp of the motion pretext (``None`` without it): sampling
    offset (B, 2, H, W) in pixels, gain and bias (B, 1, 1, 1), noise (2, B, C, H, W) of the clean and the warped
    copy."""

    swap_mask: torch.Tensor
    view_boxes: torch.Tensor | None = None
    warp_offset: torch.Tensor | None = None
    warp_gain: torch.Tensor | None = None
    warp_bias: torch.Tensor | None = None
    warp_noise: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> StepDraws:
        """The same draws on ``device``."""
        return StepDraws(**{f.name: None if getattr(self, f.name) is None
                            else getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)})

    def pin_memory(self) -> StepDraws:
        """The same draws in page-locked memory (called by the DataLoader with ``pin_memory=True``)."""
        return StepDraws(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).pin_memory()
                            for f in fields(self)})

    def chunk(self, chunks: int) -> list[StepDraws]:
        """The draws split along the batch into ``chunks`` parts (gradient accumulation)."""
        parts: dict[str, list] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            parts[f.name] = [None] * chunks if value is None else list(value.chunk(chunks, dim=_batch_dim(f.name)))
        return [StepDraws(**{name: values[i] for name, values in parts.items()}) for i in range(chunks)]

    @staticmethod
    def cat(parts: list[StepDraws]) -> StepDraws:
        """The draws of consecutive parts of a batch joined (the inverse of :meth:`chunk`)."""
        joined = {}
        for f in fields(StepDraws):
            values = [getattr(part, f.name) for part in parts]
            joined[f.name] = None if values[0] is None else torch.cat(values, dim=_batch_dim(f.name))
        return StepDraws(**joined)


def _batch_dim(name: str) -> int:
    return 1 if name in ("view_boxes", "warp_noise") else 0


def view_count(config: ModelConfig) -> tuple[int, int]:
    """(global, local) agreement crops per sample: EMA-MSE 1 global, DINO 2 global and ``dino_local_crops`` local."""
    if config.agreement == "ema-mse":
        return 1, 0
    if config.agreement == "dino":
        return 2, config.dino_local_crops
    return 0, 0


def draw_step(config: ModelConfig, batch: int, channels: int, height: int, width: int,
              generator: torch.Generator | None = None, device: torch.device | str = "cpu",
              training: bool = True) -> StepDraws:
    """Every random choice of one pre-training step of ``batch`` pairs of (channels, height, width) frames, in the
    order of the forward pass: the swap mask, then the agreement crops (global, then local), then the warp."""
    grid_h, grid_w = height // config.patch_size, width // config.patch_size
    swap_mask = blockwise_swap_mask(batch, grid_h, grid_w, config.swap_ratio, min_block=config.swap_min_block,
                                    aspect=config.swap_aspect, generator=generator, device=device)
    draws = StepDraws(swap_mask)
    if not training:
        return draws
    device = swap_mask.device
    global_views, local_views = view_count(config)
    if global_views:
        boxes = [random_crop_boxes(batch, config.crop_scale, config.crop_ratio, device, generator)
                 for _ in range(global_views)]
        boxes += [random_crop_boxes(batch, config.dino_local_scale, config.crop_ratio, device, generator)
                  for _ in range(local_views)]
        draws.view_boxes = torch.stack(boxes)
    if config.motion_weight > 0:
        draws.warp_offset, draws.warp_gain, draws.warp_bias, draws.warp_noise = draw_warp(
            config, batch, channels, height, width, generator, device)
    return draws


def draw_warp(config: ModelConfig, batch: int, channels: int, height: int, width: int,
              generator: torch.Generator | None = None, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The warp of the motion pretext (:func:`micronbert.model.motion.warped_pair`'s offset, gain, bias, noise)."""
    offset = random_warp_field(batch, height, width, config, generator, device)
    gain = torch.empty(batch, 1, 1, 1, device=device).uniform_(*WARP_GAIN, generator=generator)
    bias = torch.empty(batch, 1, 1, 1, device=device).uniform_(-WARP_OFFSET, WARP_OFFSET, generator=generator)
    noise = torch.randn((2, batch, channels, height, width), device=device, generator=generator) * WARP_NOISE_STD
    return offset, gain, bias, noise
