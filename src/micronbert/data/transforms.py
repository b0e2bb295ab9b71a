"""Image geometry and model input conversion (METHOD.md §2): square crops and resizing, RGB uint8 frames ↔
ImageNet-normalised float tensors."""
from __future__ import annotations

import cv2
import numpy as np
import torch

Box = tuple[float, float, float, float]  # x, y, width, height in pixels

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


def centre_square(image: np.ndarray) -> Box:
    """The largest centred square of ``image`` as an (x, y, width, height) box."""
    height, width = image.shape[:2]
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def resize_square(image: np.ndarray, size: int, box: Box | None = None) -> np.ndarray:
    """``image`` cropped to ``box`` (clipped to the image; None keeps the whole image) and resized to size×size,
    with area interpolation when shrinking. A non-square image without a box is stretched to the square."""
    if box is not None:
        height, width = image.shape[:2]
        x, y, w, h = (int(v) for v in box)
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {box} lies outside the {width}x{height} image")
        image = image[y0:y1, x0:x1]
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
