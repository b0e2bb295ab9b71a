"""STSTNet (Liong et al., FG 2019): shallow triple-stream CNN on 28×28 onset→apex flow images.

Layer layout and parameter names follow the published PyTorch release so that its state dicts load with
``strict=True``: three parallel 3×3 convolutions ``conv1``/``conv2``/``conv3`` (3, 5 and 8 filters, padding 2),
each followed by ReLU, BatchNorm (``bn1``/``bn2``/``bn3``), max-pool (3, stride 3, padding 1) and dropout 0.5
(dropout sits per stream after the max-pool, as in the release); the streams are concatenated (16 channels,
10×10), average-pooled (2, stride 2) to 16×5×5 = 400 features and classified by the linear layer ``fc``.

Input: float tensor (N, 3, 28, 28) holding (u, v, strain) scaled to 0–255 with no further normalisation, as
produced by :func:`micronbert.data.flow.flow_features` and :func:`flow_images_to_tensor`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

INPUT_SIZE = 28
STREAM_WIDTHS = (3, 5, 8)


class STSTNet(nn.Module):
    """Shallow triple-stream network; ``forward`` returns logits of shape (N, num_classes)."""

    def __init__(self, num_classes: int = 3, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be positive, got {num_classes}, {in_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, STREAM_WIDTHS[0], kernel_size=3, padding=2)
        self.conv2 = nn.Conv2d(in_channels, STREAM_WIDTHS[1], kernel_size=3, padding=2)
        self.conv3 = nn.Conv2d(in_channels, STREAM_WIDTHS[2], kernel_size=3, padding=2)
        self.bn1 = nn.BatchNorm2d(STREAM_WIDTHS[0])
        self.bn2 = nn.BatchNorm2d(STREAM_WIDTHS[1])
        self.bn3 = nn.BatchNorm2d(STREAM_WIDTHS[2])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(sum(STREAM_WIDTHS) * 5 * 5, num_classes)

    def _stream(self, x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
        return self.dropout(self.maxpool(bn(self.relu(conv(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"STSTNet expects input of shape (N, {self.in_channels}, {INPUT_SIZE}, {INPUT_SIZE}), "
                f"got {tuple(x.shape)}"
            )
        streams = [
            self._stream(x, self.conv1, self.bn1),
            self._stream(x, self.conv2, self.bn2),
            self._stream(x, self.conv3, self.bn3),
        ]
        features = self.avgpool(torch.cat(streams, dim=1))
        return self.fc(features.flatten(1))


def flow_images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 flow images (H, W, 3) or (N, H, W, 3), 0–255, to a float32 (N, 3, H, W) tensor, values unchanged."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"flow images must have shape (H, W, 3) or (N, H, W, 3), got {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
