"""Warp-motion pretext and the per-patch motion head (a micronbert extension, not in the paper; METHOD.md §10).

The paper's DMA diagonal does not learn to find a micro-motion on the synthetic data (docs/FINDINGS.md §2–§7).
This module adds a comparison of co-located patches that is trained, without labels, to say how far and in which
direction each patch moved:

- a copy of a pre-training frame is warped by a known smooth field (a few Gaussian bumps, a small rotation and
  shift), given a photometric change (gain, offset) and noise; the clean frame gets its own noise;
- :class:`MotionHead` reads the encoder tokens of the two frames patch by patch and predicts the mean optical
  flow of each patch, in pixels (OpenCV convention, as :mod:`micronbert.data.flow`: the content at ``x`` of the
  first frame is found at ``x + flow`` in the second), trained by mean squared error;
- for recognition (``head: motion``), the flow of (onset, apex) per patch with the median over the patches removed
  (which cancels a global head shift) is what the classifier reads.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

# Photometric nuisances of the warped copy, in normalised input units (ImageNet std ≈ 0.23 per unit of [0, 1]).
WARP_GAIN = (0.95, 1.05)
WARP_OFFSET = 0.1
WARP_NOISE_STD = 0.05
BUMP_SIGMA = (1 / 32, 3 / 32)  # width of a bump, fraction of the image width
BUMP_MARGIN = 0.1  # bump centres keep this fraction of the image away from the border


class MotionHead(nn.Module):
    """Per-patch MLP on the co-located tokens (a, b, b − a) of two frames → (flow_x, flow_y) in pixels."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or 2 * dim
        self.fc1 = nn.Linear(3 * dim, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, N, dim) of the first and second frame → flow (B, N, 2)."""
        return self.fc2(F.gelu(self.fc1(torch.cat([first, second, second - first], dim=-1))))


def random_warp_field(batch: int, height: int, width: int, config: ModelConfig,
                      generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """A smooth sampling offset (B, 2, H, W) in pixels: ``config.motion_bumps`` Gaussian bumps of up to
    ``motion_amplitude`` × width in random directions, an in-plane rotation of up to ``motion_rotation_deg`` and
    a shift of up to ``motion_shift`` × width per axis."""
    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return torch.empty(batch, *shape, device=device).uniform_(low, high, generator=generator)

    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width)
    field = torch.zeros(batch, 2, height, width, device=device)
    for _ in range(config.motion_bumps):
        cx = uniform(BUMP_MARGIN * width, (1 - BUMP_MARGIN) * width, 1, 1)
        cy = uniform(BUMP_MARGIN * height, (1 - BUMP_MARGIN) * height, 1, 1)
        sigma = uniform(BUMP_SIGMA[0] * width, BUMP_SIGMA[1] * width, 1, 1)
        amplitude = uniform(0.0, config.motion_amplitude * width, 1, 1)
        angle = uniform(0.0, 2 * math.pi, 1, 1)
        bump = amplitude * torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        field[:, 0] += bump * torch.cos(angle)
        field[:, 1] += bump * torch.sin(angle)
    rotation = uniform(-config.motion_rotation_deg, config.motion_rotation_deg, 1, 1) * (math.pi / 180)
    field[:, 0] -= rotation * (ys - height / 2)
    field[:, 1] += rotation * (xs - width / 2)
    shift = config.motion_shift * width
    return field + uniform(-shift, shift, 2, 1, 1)


def warp_images(images: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``out(x) = images(x + offset(x))`` with bilinear sampling; ``offset`` (B, 2, H, W) in pixels (x, y)."""
    _, _, height, width = images.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=images.device, dtype=torch.float32),
                            torch.arange(width, device=images.device, dtype=torch.float32), indexing="ij")
    grid_x = (xs + offset[:, 0]) * (2 / (width - 1)) - 1
    grid_y = (ys + offset[:, 1]) * (2 / (height - 1)) - 1
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def patch_flow(offset: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Mean optical flow per patch (B, N, 2) of a frame warped by the sampling ``offset`` (B, 2, H, W).

    A smooth warp that samples at ``x + d`` moves the content by about ``−d``."""
    return -F.avg_pool2d(offset, patch_size).flatten(2).transpose(1, 2)


def warped_pair(frames: torch.Tensor, offset: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor,
                noise: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy copy of ``frames``, copy warped by the sampling ``offset`` (B, 2, H, W) with ``gain`` and ``bias``,
    true flow per patch (B, N, 2)); ``noise`` (2, B, C, H, W) is added to the two copies (drawn by
    :func:`micronbert.model.draws.draw_step`)."""
    still = frames.float() + noise[0]
    moved = warp_images(frames, offset) * gain + bias + noise[1]
    return still.to(frames.dtype), moved.to(frames.dtype), patch_flow(offset, patch_size)


def centred_flow(flow: torch.Tensor) -> torch.Tensor:
    """Per-patch flow (B, N, 2) minus its median over the patches of each sample (removes a global shift)."""
    return flow - flow.median(dim=1, keepdim=True).values
