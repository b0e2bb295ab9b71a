"""Recognition head (METHOD.md §8)."""
from __future__ import annotations

import torch
from torch import nn


class RecognitionHead(nn.Module):
    """Saliency-weighted mean of the DMA tokens → LN → dropout → Linear(classes)."""

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.1, eps: float = 1e-6) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"a recognition head needs at least one class, got {num_classes}")
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def pool(self, features: torch.Tensor, saliency: torch.Tensor | None) -> torch.Tensor:
        """(B, N, dim) features, optional (B, N) weights of mean 1 → (B, dim)."""
        if saliency is None:
            return features.mean(dim=1)
        return (features * saliency.unsqueeze(-1)).mean(dim=1)

    def forward(self, features: torch.Tensor, saliency: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.dropout(self.norm(self.pool(features, saliency))))
