"""Model input conversion (METHOD.md §2): RGB uint8 frames ↔ ImageNet-normalised float tensors."""
from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8 RGB (grey (…, H, W) replicated) → (B, 3, H, W) normalised float32."""
    array = torch.as_tensor(np.asarray(images))
    if array.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] not in (1, 3)):
        array = array.unsqueeze(-1)
    if array.ndim == 3:
        array = array.unsqueeze(0)
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ValueError(f"expected (B, H, W, 3) or (H, W, 3) images, got shape {tuple(array.shape)}")
    x = array.permute(0, 3, 1, 2).float().div(255.0).expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_model_input`: (B, 3, H, W) normalised → (B, H, W, 3) uint8."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    x = (images.detach().float() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
