"""Batched random resized crops on the device (one affine resampling for the whole batch)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_crop_boxes(batch: int, scale: tuple[float, float], ratio: tuple[float, float],
                      device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random boxes (B, 4) as (centre_x, centre_y, width, height) in units of the image side.

    Area fraction uniform in ``scale``, aspect ratio log-uniform in ``ratio``; the box always lies inside.
    """
    rand = torch.rand(batch, 4, device=device, generator=generator)
    area = scale[0] + rand[:, 0] * (scale[1] - scale[0])
    log_ratio = math.log(ratio[0]) + rand[:, 1] * (math.log(ratio[1]) - math.log(ratio[0]))
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = width / 2 + rand[:, 2] * (1 - width)
    cy = height / 2 + rand[:, 3] * (1 - height)
    return torch.stack([cx, cy, width, height], dim=1)


def crop_and_resize(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Resample each box of ``boxes`` (see :func:`random_crop_boxes`) to ``size``×``size`` (bilinear)."""
    batch = images.shape[0]
    theta = torch.zeros(batch, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = boxes[:, 2]
    theta[:, 1, 1] = boxes[:, 3]
    theta[:, 0, 2] = boxes[:, 0] * 2 - 1
    theta[:, 1, 2] = boxes[:, 1] * 2 - 1
    grid = F.affine_grid(theta, [batch, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(images: torch.Tensor, size: int, scale: tuple[float, float],
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """An independent random resized crop of every image of the batch."""
    boxes = random_crop_boxes(images.shape[0], scale, ratio, images.device, generator)
    return crop_and_resize(images, boxes, size)
