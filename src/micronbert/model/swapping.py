"""Blockwise swapping (METHOD.md §3): co-located blocks of patches copied from I_{t+δ} into I_t.

Everything is batched and stays on the input's device; the only Python loop is over rounds of block
placement (each round places one block in every sample that still needs patches).
"""
from __future__ import annotations

import math

import torch


def swap_count(num_patches: int, ratio: float) -> int:
    """The exact number of swapped patches, round(ratio · N)."""
    return int(round(ratio * num_patches))


def random_blocks(batch: int, grid_h: int, grid_w: int, max_area: torch.Tensor, min_area: int,
                  aspect: tuple[float, float], generator: torch.Generator | None = None) -> torch.Tensor:
    """One random rectangle of patches per sample, as a boolean (B, grid_h, grid_w) mask.

    Areas are uniform in [min_area, max_area] (per sample), aspect ratios log-uniform in ``aspect``.
    """
    device = max_area.device
    rand = torch.rand(batch, 4, device=device, generator=generator)
    max_area = max_area.clamp(min=min_area).float()
    area = min_area + rand[:, 0] * (max_area - min_area)
    log_low, log_high = math.log(aspect[0]), math.log(aspect[1])
    ratio = torch.exp(log_low + rand[:, 1] * (log_high - log_low))
    h = torch.sqrt(area * ratio).round().clamp(1, grid_h).long()
    w = torch.sqrt(area / ratio).round().clamp(1, grid_w).long()
    top = (rand[:, 2] * (grid_h - h + 1)).floor().long()
    left = (rand[:, 3] * (grid_w - w + 1)).floor().long()
    rows = torch.arange(grid_h, device=device)[None, :, None]
    cols = torch.arange(grid_w, device=device)[None, None, :]
    inside_rows = (rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
    inside_cols = (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None])
    return inside_rows & inside_cols


def blockwise_swap_mask(batch: int, grid_h: int, grid_w: int, ratio: float, *, min_block: int = 4,
                        aspect: tuple[float, float] = (0.3, 3.3), max_rounds: int = 64,
                        generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """A boolean (B, grid_h·grid_w) mask with exactly round(ratio·N) True entries per sample.

    Blocks are placed BEiT-style until every sample reaches the count (each block at most the patches
    still missing), then the union is trimmed or topped up at random to the exact count. With a
    ``generator`` (on ``device``) the result is reproducible.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"swap ratio must lie in (0, 1), got {ratio}")
    if generator is not None:
        device = generator.device
    device = torch.device(device) if device is not None else torch.device("cpu")
    num_patches = grid_h * grid_w
    target = swap_count(num_patches, ratio)
    mask = torch.zeros(batch, grid_h, grid_w, dtype=torch.bool, device=device)
    for _ in range(max_rounds):
        missing = target - mask.flatten(1).sum(1)
        needy = missing > 0
        if not bool(needy.any()):
            break
        block = random_blocks(batch, grid_h, grid_w, missing, min_block, aspect, generator)
        mask |= block & needy[:, None, None]
    return exact_count(mask.flatten(1), target, generator)


def exact_count(mask: torch.Tensor, target: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep ``target`` True entries per row: selected ones first (random among them), then random others."""
    priority = mask.float() * 2.0 + torch.rand(mask.shape, device=mask.device, generator=generator)
    chosen = priority.topk(target, dim=1).indices
    return torch.zeros_like(mask).scatter_(1, chosen, True)


def patch_mask_to_pixels(mask: torch.Tensor, grid_h: int, grid_w: int, patch_size: int) -> torch.Tensor:
    """(B, N) patch mask → (B, 1, H, W) pixel mask."""
    grid = mask.reshape(-1, 1, grid_h, grid_w)
    return grid.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def swap_patches(frame_t: torch.Tensor, frame_t_delta: torch.Tensor, mask: torch.Tensor,
                 patch_size: int) -> torch.Tensor:
    """I_{t/s}: ``frame_t`` with the pixels of every masked patch taken from ``frame_t_delta``."""
    grid_h, grid_w = frame_t.shape[-2] // patch_size, frame_t.shape[-1] // patch_size
    pixels = patch_mask_to_pixels(mask, grid_h, grid_w, patch_size)
    return torch.where(pixels, frame_t_delta, frame_t)
